"""File locks between real processes: holding, giving up, waiting, and release by the kernel."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from kaizen.platform import locks
from kaizen.platform.locks import (
    LockTimeoutError,
    acquire_file_lock,
    file_lock,
    release_file_lock,
)

# A process that takes the lock (argv: path, timeout or "none", "pid" to record its pid),
# says "locked", and releases it when a line arrives on stdin (then says "released").
_LOCKER = textwrap.dedent(
    """
    import sys
    from kaizen.platform.locks import acquire_file_lock, release_file_lock

    path, timeout, record = sys.argv[1:4]
    descriptor = acquire_file_lock(
        path, None if timeout == "none" else float(timeout), record_pid=record == "pid"
    )
    print("locked", flush=True)
    sys.stdin.readline()
    release_file_lock(descriptor)
    print("released", flush=True)
    sys.stdin.readline()
    """
)


def _locker(path: Path, timeout: str = "none", record: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(path), timeout, record],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _say(process: subprocess.Popen[str], line: str = "go") -> None:
    assert process.stdin is not None
    process.stdin.write(line + "\n")
    process.stdin.flush()


def _hear(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    return process.stdout.readline().strip()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
        process.wait()


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "folder" / "the.lock"


def test_a_held_lock_names_its_holder_to_another_process(
    lock_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    holder = _locker(lock_path, record="pid")
    processes.append(holder)
    assert _hear(holder) == "locked"

    with pytest.raises(LockTimeoutError) as raised:
        acquire_file_lock(lock_path, 0)

    assert raised.value.path == lock_path
    assert raised.value.holder == str(holder.pid)
    assert isinstance(raised.value, TimeoutError)
    assert f"pid {holder.pid}" in str(raised.value)
    assert lock_path.read_text() == str(holder.pid)


def test_without_a_recorded_pid_the_holder_is_unknown(
    lock_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    holder = _locker(lock_path)
    processes.append(holder)
    assert _hear(holder) == "locked"

    with pytest.raises(LockTimeoutError) as raised:
        acquire_file_lock(lock_path, 0)

    assert raised.value.holder is None


def test_timeout_zero_tries_once_without_waiting(
    lock_path: Path, processes: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = _locker(lock_path)
    processes.append(holder)
    assert _hear(holder) == "locked"
    naps: list[float] = []
    monkeypatch.setattr(locks.time, "sleep", naps.append)

    with pytest.raises(LockTimeoutError):
        acquire_file_lock(lock_path, 0)

    assert naps == []


def test_a_timeout_polls_until_the_deadline(
    lock_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    holder = _locker(lock_path)
    processes.append(holder)
    assert _hear(holder) == "locked"
    started = locks.time.monotonic()

    with pytest.raises(LockTimeoutError) as raised:
        acquire_file_lock(lock_path, 0.2)

    assert locks.time.monotonic() - started >= 0.2
    assert raised.value.timeout_s == 0.2


def test_the_kernel_releases_the_lock_of_a_dead_holder(
    lock_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    holder = _locker(lock_path, record="pid")
    processes.append(holder)
    assert _hear(holder) == "locked"

    holder.kill()
    holder.wait()
    descriptor = acquire_file_lock(lock_path, 0, record_pid=True)
    release_file_lock(descriptor)

    assert lock_path.read_text() == str(os.getpid())


@pytest.mark.parametrize("timeout", ["none", "600"])
def test_a_waiting_process_gets_the_lock_once_it_is_released(
    lock_path: Path, processes: list[subprocess.Popen[str]], timeout: str
) -> None:
    holder = _locker(lock_path)
    processes.append(holder)
    assert _hear(holder) == "locked"
    waiter = _locker(lock_path, timeout=timeout)
    processes.append(waiter)
    assert waiter.stdout is not None

    # The waiter has said nothing while the lock is held (checked without waiting).
    assert select.select([waiter.stdout], [], [], 0)[0] == []
    _say(holder)
    assert _hear(holder) == "released"

    assert _hear(waiter) == "locked"


def test_file_lock_holds_for_the_block_only(tmp_path: Path) -> None:
    path = tmp_path / "the.lock"

    # flock() belongs to an open file: a second open in the same process conflicts too.
    with file_lock(path) as descriptor:
        assert not os.get_inheritable(descriptor)
        with pytest.raises(LockTimeoutError):
            acquire_file_lock(path, 0)

    release_file_lock(acquire_file_lock(path, 0))


def test_a_negative_timeout_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        acquire_file_lock(tmp_path / "the.lock", -1)
