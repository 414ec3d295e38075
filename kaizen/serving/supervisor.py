"""Keep the model server running: restart it with backoff whenever it dies unasked.

``kaizen serve`` runs :class:`Supervisor`, which starts the server command as a child
process and waits on it. When the child exits without being asked to (a crash, ``kill -9``,
a non-zero exit, even exit 0) it is started again after a delay:

* the first restart waits 0.5 s, each further consecutive failure doubles the wait, up to
  10 s (``Backoff``); a child that fails during every startup is therefore retried at most
  every 10 s, never in a tight loop;
* a child that stayed up for 30 s (``Backoff.stable_after``), and became ready when a
  readiness URL is known, counts as healthy: its crash starts the sequence again at 0.5 s,
  so a server that crashes once a day is back at once.

Every exit is logged in words, with the tail of the server's output when it may explain
the exit (``server exited with code 1 after 3.1 s; restarting in 1.0 s (restart 2)``).

Most of a server's startup is importing TensorFlow, KServe and MLflow (5-10 s on two
cores). So that a crash costs only the model load, the supervisor keeps a **warm standby**
once the server is ready: a second process that has run those imports and waits on its
stdin. A restart hands the standby a ``go`` and it runs the server module as
``python -m`` would; a new standby is started when that server is ready. The standby costs
a second process's memory (about 400 MB of private memory) and can be turned off
(``standby=False``, ``kaizen serve --no-standby``). Without a live standby (none yet, or it
died) the server starts cold.

SIGTERM or SIGINT (Ctrl-C) to the supervisor forwards SIGTERM to the child, waits up to
``stop_timeout`` seconds for it to drain and exit, kills it after that, and returns 0. A
second signal while stopping kills the child at once. The child runs in its own session (a
terminal's Ctrl-C reaches only the supervisor, which stops the child in order) and, on
Linux, is sent SIGTERM by the kernel if the supervisor itself dies, so no orphaned server
keeps the port.

The child's output is appended to a log file (``$KAIZEN_HOME/logs/serve-<port>.log``) and
echoed to the supervisor's stderr unless ``echo`` is off. The supervisor's state is kept in
``$KAIZEN_HOME/serving/supervisor-<port>.json`` (written atomically), for operators and
tests to find the child::

    {"supervisor_pid": 4120, "child_pid": 4133, "state": "ready", "restarts": 1,
     "consecutive_failures": 1, "last_exit": {"code": null, "signal": "SIGKILL",
     "uptime_seconds": 12.3, "at": "..."}, "port": 8080, "command": [...], ...}

``standby_pid`` names the warm standby (null when there is none). ``state`` is one of
``starting`` (child started, not ready yet), ``ready`` (its readiness
URL answered 200; only when a ``ready_url`` is given), ``restarting`` (waiting out the
backoff), ``stopping`` and ``stopped``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
import types
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from kaizen.platform.fileio import write_json_atomic
from kaizen.platform.processes import parent_death_signal, pid_alive

logger = logging.getLogger(__name__)

SERVER_MODULE = "kaizen.serving.server"
# What a standby imports before it waits: the server's slow dependencies (KServe and its
# web stack, TensorFlow via keras and the model loader, MLflow via the registry), and Feast
# when it will need it. The server module imports most of them only inside functions.
STANDBY_PRELOAD: tuple[str, ...] = (
    "kserve",
    "kserve.model_server",
    "uvicorn",
    "kaizen.serving.predictor",
    "kaizen.serving.router",
    "kaizen.serving.metrics",
    "keras",
    "mlflow",
    "mlflow.artifacts",
    # MLflow's SQLite stores import SQLAlchemy and alembic on first use: over a second.
    "mlflow.store.tracking.sqlalchemy_store",
    "mlflow.store.model_registry.sqlalchemy_store",
    "kaizen.registry",
    "kaizen.training.train",
)
STANDBY_FEAST_PRELOAD: tuple[str, ...] = ("kaizen.features.store",)
STANDBY_GO = "go"
TAIL_LINES = 20
# Read at most this much of the log to find the tail: a crash's last lines, not its history.
TAIL_BYTES = 16384


@dataclass(frozen=True)
class Backoff:
    """How long to wait before restarting a child that exited unasked.

    Attributes:
        initial: Wait before the first restart, in seconds.
        factor: Multiplier for each further consecutive failure.
        maximum: Longest wait, in seconds.
        stable_after: A child up at least this long (seconds) was healthy; its exit resets
            the sequence to ``initial``.
    """

    initial: float = 0.5
    factor: float = 2.0
    maximum: float = 10.0
    stable_after: float = 30.0

    def delay(self, consecutive_failures: int) -> float:
        """Seconds to wait after the ``consecutive_failures``-th failure in a row (1, 2, ...)."""
        exponent = max(consecutive_failures - 1, 0)
        # Capped before the power so a long outage cannot overflow a float.
        return float(min(self.initial * self.factor ** min(exponent, 64), self.maximum))


def state_path(home: str | os.PathLike[str], port: int) -> Path:
    """Where the supervisor of ``port`` keeps its state (``serving/supervisor-<port>.json``).

    Args:
        home: ``KAIZEN_HOME``.
        port: The server's HTTP port.

    Returns:
        The state file path.
    """
    return Path(home) / "serving" / f"supervisor-{port}.json"


def running_supervisor(home: str | os.PathLike[str], port: int) -> int | None:
    """The pid of a live supervisor serving ``port`` under ``home``, or None.

    A state file left by a supervisor that died without cleaning up is stale: None.
    """
    try:
        state = json.loads(state_path(home, port).read_text())
        pid = int(state.get("supervisor_pid") or 0)
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    if state.get("state") == "stopped" or pid == os.getpid() or not pid_alive(pid):
        return None
    return pid


def log_path(home: str | os.PathLike[str], port: int) -> Path:
    """Where the server's output goes: ``$KAIZEN_HOME/logs/serve-<port>.log``.

    Args:
        home: ``KAIZEN_HOME``.
        port: The server's HTTP port.

    Returns:
        The log file path.
    """
    return Path(home) / "logs" / f"serve-{port}.log"


def describe_exit(returncode: int) -> tuple[int | None, str | None, str]:
    """Split a ``Popen.returncode`` into (exit code, signal name, words).

    Args:
        returncode: Negative for a signal (``-9``), else the exit code.

    Returns:
        ``(code, None, "with code 1")`` or ``(None, "SIGKILL", "on signal SIGKILL")``.
    """
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return None, name, f"on signal {name}"
    return returncode, None, f"with code {returncode}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Supervisor:
    """Run a server command as a child process and keep it running.

    Args:
        command: The server command (``[sys.executable, "-m", "kaizen.serving.server", ...]``).
        port: The server's HTTP port; names the state and log files.
        home: ``KAIZEN_HOME``, where the state file and log go.
        env: Extra environment variables for the child (on top of this process's).
        backoff: Restart delays (see :class:`Backoff`).
        stop_timeout: Seconds the child has to exit after SIGTERM before it is killed.
        ready_url: URL answering 200 once the child is ready (``/v2/health/ready``); lets
            the log and state say when the server is serving. None skips the check.
        echo: Stream to copy the child's output to (stderr by default); None keeps it in
            the log file only.
        standby: Keep a warm standby for fast restarts (needs a ``python -m`` command).
        poll_interval: Seconds between checks of the child and of pending signals.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        port: int,
        home: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        backoff: Backoff | None = None,
        stop_timeout: float = 30.0,
        ready_url: str | None = None,
        echo: IO[str] | None = sys.stderr,
        standby: bool = True,
        poll_interval: float = 0.1,
    ) -> None:
        if not command:
            raise ValueError("command is empty: nothing to supervise")
        if stop_timeout <= 0:
            raise ValueError(f"stop_timeout must be positive, got {stop_timeout}")
        self.command = [str(part) for part in command]
        self.port = port
        self.home = Path(home)
        self.env = dict(env or {})
        self.backoff = backoff or Backoff()
        self.stop_timeout = stop_timeout
        self.ready_url = ready_url
        self.echo = echo
        self.poll_interval = poll_interval
        self.standby_command = standby_command(self.command) if standby else None
        self.state_file = state_path(self.home, port)
        self.log_file = log_path(self.home, port)
        self.restarts = 0
        self.consecutive_failures = 0
        self._signals: list[int] = []
        self._child: subprocess.Popen[bytes] | None = None
        self._standby: subprocess.Popen[bytes] | None = None
        self._child_started = 0.0
        self._child_log_offset = 0
        self._echo_offset = 0
        self._ready = False
        self._down_since: float | None = None
        self._last_exit: dict[str, Any] | None = None
        self._started_at = _now()

    # ----- public ----------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until SIGTERM/SIGINT (or :meth:`request_stop`); then stop the child.

        Must be called from the main thread (it installs signal handlers, restored on return).

        Returns:
            0 once the child has been stopped on request.

        Raises:
            OSError: the command cannot be started at all (not found, not executable).
        """
        self._echo_offset = self._log_size()
        with self._signal_handlers():
            try:
                while not self._signals:
                    self._start_child()
                    returncode = self._watch_child()
                    if returncode is None:
                        break  # asked to stop
                    delay = self._record_unasked_exit(returncode)
                    if not self._sleep(delay):
                        break
            finally:
                self._stop_child()
                if self._standby is not None:
                    _terminate(self._standby, timeout=5.0)
                    self._standby = None
                self._write_state("stopped")
        return 0

    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """Ask :meth:`run` to stop the child and return (safe from a signal handler).

        Args:
            signum: The signal being handled, for the log.
        """
        self._signals.append(signum)

    # ----- child lifecycle -------------------------------------------------------------

    def _spawn(self, command: list[str], what: str, *, stdin: int) -> subprocess.Popen[bytes]:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            log.write(f"\n--- {_now()} kaizen serve: {what} {' '.join(command)}\n".encode())
            log.flush()
            return subprocess.Popen(
                command,
                stdin=stdin,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Unbuffered, so the tail logged after a crash holds the child's last words.
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                start_new_session=True,
                # preexec_fn is unsafe only with threads, and the supervisor runs none.
                # SIGTERM when the supervisor dies, so the server drains and frees the port.
                preexec_fn=parent_death_signal(signal.SIGTERM),
            )

    def _start_child(self) -> None:
        self._child_log_offset = self._log_size()
        child = self._promote_standby()
        if child is None:
            child = self._spawn(self.command, "starting", stdin=subprocess.DEVNULL)
            logger.info("server started (pid %d); its output: %s", child.pid, self.log_file)
        else:
            logger.info("server started from the warm standby (pid %d)", child.pid)
        self._child = child
        self._child_started = time.monotonic()
        self._ready = False
        self._write_state("starting")
        if not self.ready_url:
            self._start_standby()  # nothing tells when the server is up: prepare it now

    def _log_size(self) -> int:
        try:
            return self.log_file.stat().st_size
        except OSError:
            return 0

    def _start_standby(self) -> None:
        if self.standby_command is None or self._signals:
            return
        if self._standby is not None and self._standby.poll() is None:
            return
        self._standby = self._spawn(
            self.standby_command, "warm standby (imports, then waits)", stdin=subprocess.PIPE
        )
        self._write_state("ready" if self._ready else "starting")

    def _promote_standby(self) -> subprocess.Popen[bytes] | None:
        """Tell the warm standby to become the server; None when there is no live one."""
        standby, self._standby = self._standby, None
        if standby is None:
            return None
        if standby.poll() is not None:
            logger.warning(
                "the warm standby (pid %d) had exited %s; starting the server cold",
                standby.pid,
                describe_exit(standby.returncode)[2],
            )
            return None
        assert standby.stdin is not None
        try:
            standby.stdin.write(f"{STANDBY_GO}\n".encode())
            standby.stdin.close()
        except OSError:
            _terminate(standby, timeout=5.0)
            return None
        return standby

    def _watch_child(self) -> int | None:
        """Wait for the child; its return code when it exits unasked, None on a stop request."""
        assert self._child is not None
        next_probe = 0.0
        while not self._signals:
            self._copy_output()
            returncode = self._child.poll()
            if returncode is not None:
                self._copy_output()
                return returncode
            if self._standby is not None and self._standby.poll() is not None:
                # Not restarted here: a standby that cannot even import would loop; the
                # next ready server starts a new one.
                logger.warning(
                    "the warm standby (pid %d) exited %s; the next restart will be cold",
                    self._standby.pid,
                    describe_exit(self._standby.returncode)[2],
                )
                self._standby = None
                self._write_state("ready" if self._ready else "starting")
            if self.ready_url and not self._ready and time.monotonic() >= next_probe:
                next_probe = time.monotonic() + 0.25
                if self._probe_ready():
                    self._on_ready()
            time.sleep(self.poll_interval)
        return None

    def _on_ready(self) -> None:
        assert self._child is not None
        self._ready = True
        took = time.monotonic() - self._child_started
        if self._down_since is not None:
            logger.info(
                "server ready again (pid %d), %.1f s after it went down (restart %d)",
                self._child.pid,
                time.monotonic() - self._down_since,
                self.restarts,
            )
        else:
            base = urllib.parse.urlsplit(self.ready_url or "")
            logger.info(
                "server ready at %s://%s (pid %d, %.1f s after start)",
                base.scheme,
                base.netloc,
                self._child.pid,
                took,
            )
        self._down_since = None
        self._write_state("ready")
        self._start_standby()

    def _probe_ready(self) -> bool:
        assert self.ready_url is not None
        try:
            with urllib.request.urlopen(self.ready_url, timeout=0.5) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _record_unasked_exit(self, returncode: int) -> float:
        """Log an exit nobody asked for and decide how long to wait before the restart."""
        assert self._child is not None
        uptime = time.monotonic() - self._child_started
        code, signal_name, words = describe_exit(returncode)
        # A slow startup that fails after 30 s was never healthy: readiness counts, if known.
        if uptime >= self.backoff.stable_after and (self._ready or not self.ready_url):
            self.consecutive_failures = 0
        self.consecutive_failures += 1
        self.restarts += 1
        delay = self.backoff.delay(self.consecutive_failures)
        if self._down_since is None:
            self._down_since = time.monotonic()
        self._last_exit = {
            "pid": self._child.pid,
            "code": code,
            "signal": signal_name,
            "uptime_seconds": round(uptime, 3),
            "at": _now(),
        }
        if self.ready_url and not self._ready:
            when = f"during startup, after {uptime:.1f} s"
        else:
            when = f"after {uptime:.1f} s"
        message = (
            f"server exited {words} {when}; restarting in {delay:.1f} s (restart {self.restarts})"
        )
        # A SIGKILL came from outside (an operator, the OOM killer): the output cannot explain it.
        tail = self._tail() if signal_name != "SIGKILL" else ""
        if tail:
            indented = "\n".join(f"    {line}" for line in tail.splitlines())
            message += f"\n  last lines of its output ({self.log_file}):\n{indented}"
        logger.warning(message)
        self._child = None
        self._write_state("restarting", next_start_in=delay)
        return delay

    def _sleep(self, seconds: float) -> bool:
        """Wait out a backoff; False when a stop was requested meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._signals:
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(self.poll_interval, left))
        return False

    def _stop_child(self) -> None:
        child = self._child
        if child is None or child.poll() is not None:
            self._child = None
            return
        self._write_state("stopping")
        handled = len(self._signals)
        reason = (
            f"received {signal.Signals(self._signals[0]).name}" if self._signals else "stopping"
        )
        logger.info(
            "%s: sending SIGTERM to the server (pid %d), waiting up to %.0f s for it to exit",
            reason,
            child.pid,
            self.stop_timeout,
        )
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        while child.poll() is None and time.monotonic() < deadline:
            if len(self._signals) > handled:
                logger.warning("second stop signal: killing the server (pid %d) now", child.pid)
                break
            self._copy_output()
            time.sleep(self.poll_interval)
        if child.poll() is None:
            if len(self._signals) <= handled:
                logger.warning(
                    "server (pid %d) did not exit within %.0f s of SIGTERM; killing it",
                    child.pid,
                    self.stop_timeout,
                )
            with contextlib.suppress(ProcessLookupError):
                child.kill()
        returncode = child.wait()
        self._copy_output()
        code, signal_name, words = describe_exit(returncode)
        logger.info("server (pid %d) exited %s; supervisor stopped", child.pid, words)
        self._last_exit = {
            "pid": child.pid,
            "code": code,
            "signal": signal_name,
            "uptime_seconds": round(time.monotonic() - self._child_started, 3),
            "at": _now(),
        }
        self._child = None

    # ----- output, state, signals ------------------------------------------------------

    def _copy_output(self) -> None:
        if self.echo is None:
            return
        try:
            with self.log_file.open("rb") as log:
                log.seek(self._echo_offset)
                data = log.read()
        except OSError:
            return
        if data:
            self._echo_offset += len(data)
            self.echo.write(data.decode("utf-8", "replace"))
            self.echo.flush()

    def _tail(self) -> str:
        try:
            with self.log_file.open("rb") as log:
                end = log.seek(0, os.SEEK_END)
                start = max(self._child_log_offset, end - TAIL_BYTES)
                log.seek(start)
                data = log.read()
        except OSError:
            return ""
        lines = data.decode("utf-8", "replace").splitlines()
        # The header line this supervisor wrote is not the child's output.
        lines = [line for line in lines if line and not line.startswith("--- ")]
        return "\n".join(lines[-TAIL_LINES:])

    def _write_state(self, state: str, *, next_start_in: float | None = None) -> None:
        child = self._child
        payload: dict[str, Any] = {
            "state": state,
            "supervisor_pid": os.getpid(),
            "child_pid": child.pid if child is not None and child.poll() is None else None,
            "standby_pid": self._standby.pid if self._standby is not None else None,
            "port": self.port,
            "command": self.command,
            "restarts": self.restarts,
            "consecutive_failures": self.consecutive_failures,
            "last_exit": self._last_exit,
            "next_start_in_seconds": next_start_in,
            "started_at": self._started_at,
            "updated_at": _now(),
            "log_file": str(self.log_file),
        }
        try:
            write_json_atomic(self.state_file, payload)
        except OSError as error:
            # The state file is for operators; failing to write it must not stop serving.
            logger.warning("cannot write %s: %s", self.state_file, error)

    @contextlib.contextmanager
    def _signal_handlers(self) -> Iterator[None]:
        def handle(signum: int, _frame: types.FrameType | None) -> None:
            self.request_stop(signum)

        previous = {
            signum: signal.signal(signum, handle) for signum in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def server_command(
    args: Sequence[str], *, module: str = SERVER_MODULE, python: str | None = None
) -> list[str]:
    """The command that runs one server: ``python -m <module> <args>``.

    Args:
        args: The server's arguments (``--http-port 8080 ...``).
        module: The server module.
        python: The interpreter; this one when None.

    Returns:
        The command as a list.
    """
    return [python or sys.executable, "-m", module, *args]


def standby_command(command: Sequence[str]) -> list[str] | None:
    """The warm-standby form of a ``python -m module args...`` command; None for others.

    Args:
        command: The server command.

    Returns:
        ``[python, "-m", "kaizen.serving.supervisor", "--standby", module, "--", *args]``.
    """
    if len(command) < 3 or command[1] != "-m":
        return None
    python, _, module, *args = command
    return [python, "-m", "kaizen.serving.supervisor", "--standby", module, "--", *args]


def _terminate(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
    if process.stdin is not None:
        with contextlib.suppress(OSError):
            process.stdin.close()


def run_standby(module: str, args: Sequence[str]) -> int:
    """Import the server's dependencies, wait for ``go`` on stdin, then run the server.

    Runs ``module`` exactly as ``python -m module args...`` would, in this process, once
    the supervisor writes ``go``; end of input (the supervisor closed the pipe or died)
    exits quietly.

    Args:
        module: The server module.
        args: Its arguments.

    Returns:
        0 when told not to start (the server's own exit status otherwise).
    """
    preload = [module, *STANDBY_PRELOAD]
    if "--feature-repo" in args:
        preload += STANDBY_FEAST_PRELOAD
    for name in preload:
        # An import that fails here fails again when the server starts, with its traceback
        # in the log; nothing to report twice.
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    print(f"standby (pid {os.getpid()}): {module} imported, waiting", flush=True)
    line = sys.stdin.readline()
    if line.strip() != STANDBY_GO:
        return 0
    import runpy

    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
    return 0


def _main(argv: Sequence[str]) -> int:
    if len(argv) >= 3 and argv[0] == "--standby" and argv[2] == "--":
        return run_standby(argv[1], argv[3:])
    print(
        "usage: python -m kaizen.serving.supervisor --standby MODULE -- ARGS...\n"
        "(run by `kaizen serve`; start a supervised server with `kaizen serve`)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
