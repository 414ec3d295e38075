"""pid_alive, parent_death_signal and listen_problem against real processes and sockets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from pathlib import Path

import pytest

from kaizen.platform.processes import listen_problem, parent_death_signal, pid_alive

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only"
)

# Generous: a deadline for an event that normally takes milliseconds, on a loaded machine.
DEADLINE_S = 60.0


def _wait_until(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {DEADLINE_S:.0f} s")
        time.sleep(0.02)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A child that runs until its stdin closes."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        yield child
    finally:
        child.kill()
        child.wait()


def test_pid_alive_for_this_process_and_never_for_non_positive_pids() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0)
    assert not pid_alive(-1)


def test_pid_alive_follows_a_child_through_exit_and_reaping(
    sleeper: subprocess.Popen[bytes],
) -> None:
    assert pid_alive(sleeper.pid)

    assert sleeper.stdin is not None
    sleeper.stdin.close()
    # Wait for the exit without reaping: the child stays a zombie.
    os.waitid(os.P_PID, sleeper.pid, os.WEXITED | os.WNOWAIT)
    exited_not_reaped = pid_alive(sleeper.pid)
    sleeper.wait()

    assert not exited_not_reaped
    assert not pid_alive(sleeper.pid)


# A middle process: starts the grandchild with the hook, reports its pid, then waits for a
# line on stdin and exits (unless killed first).
_PARENT = textwrap.dedent(
    """
    import signal, subprocess, sys
    from kaizen.platform.processes import parent_death_signal

    child = subprocess.Popen(
        [sys.executable, "-c", sys.argv[1], sys.argv[2]],
        stdout=subprocess.PIPE,
        preexec_fn=parent_death_signal(signal.Signals[sys.argv[3]]),
    )
    assert child.stdout.readline() == b"ready\\n"
    print(child.pid, flush=True)
    sys.stdin.readline()
    """
)

# The grandchild: records the signal it gets in a file, then exits.
_GRANDCHILD = textwrap.dedent(
    """
    import os, signal, sys

    def record(number, frame):
        with open(sys.argv[1], "w") as out:
            out.write(signal.Signals(number).name)
        os._exit(0)

    signal.signal(signal.SIGTERM, record)
    signal.signal(signal.SIGHUP, record)
    print("ready", flush=True)
    while True:
        signal.pause()
    """
)


@linux_only
@pytest.mark.parametrize("how", ["exits", "is killed"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_the_child_gets_the_signal_when_its_parent_dies(
    tmp_path: Path, how: str, sig: signal.Signals
) -> None:
    marker = tmp_path / "signal.txt"
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, _GRANDCHILD, str(marker), sig.name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdin is not None and parent.stdout is not None
    grandchild = int(parent.stdout.readline())
    try:
        assert pid_alive(grandchild)

        if how == "exits":
            parent.stdin.write("go\n")
            parent.stdin.flush()
        else:
            parent.kill()
        parent.wait()

        _wait_until("the grandchild to end", lambda: not pid_alive(grandchild))
        assert marker.read_text() == sig.name
    finally:
        with suppress(ProcessLookupError):
            os.kill(grandchild, signal.SIGKILL)
        parent.kill()
        parent.wait()


@linux_only
def test_sigkill_ends_a_child_that_cannot_catch_it(tmp_path: Path) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, _GRANDCHILD, str(tmp_path / "signal.txt"), "SIGKILL"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdout is not None
    grandchild = int(parent.stdout.readline())
    try:
        parent.kill()
        parent.wait()

        _wait_until("the grandchild to end", lambda: not pid_alive(grandchild))
        assert not (tmp_path / "signal.txt").exists()
    finally:
        with suppress(ProcessLookupError):
            os.kill(grandchild, signal.SIGKILL)


@linux_only
def test_the_hook_ends_a_child_whose_parent_is_not_the_builder_any_more() -> None:
    # The hook is built in one process and used in its fork: to the grandchild it looks as if
    # the builder had died between fork and prctl, so the grandchild ends before its command.
    script = textwrap.dedent(
        """
        import os, signal, subprocess, sys
        from kaizen.platform.processes import parent_death_signal

        hook = parent_death_signal(signal.SIGTERM)
        here = subprocess.run([sys.executable, "-c", "pass"], preexec_fn=hook)
        pid = os.fork()
        if pid == 0:
            moved = subprocess.run([sys.executable, "-c", "pass"], preexec_fn=hook)
            os._exit(10 + moved.returncode)
        _, status = os.waitpid(pid, 0)
        print(here.returncode, os.waitstatus_to_exitcode(status) - 10)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )

    assert result.stdout.split() == ["0", "1"]


def test_no_hook_off_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "platform", "darwin")

    assert parent_death_signal(signal.SIGTERM) is None


def test_listen_problem_is_none_for_a_free_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    assert listen_problem("127.0.0.1", port) is None


def test_listen_problem_names_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        problem = listen_problem("127.0.0.1", port)

    assert problem is not None and "in use" in problem.lower()
