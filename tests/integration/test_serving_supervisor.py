"""`kaizen serve` keeps a real server alive: kill -9 heals from a warm standby, SIGTERM stops
cleanly.

Everything runs as a user would run it: ``python -m kaizen.cli serve`` in its own process
with its own KAIZEN_HOME, a tiny registered model, and signals sent to real pids.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from kaizen.serving.supervisor import state_path
from tests.support.serving import export_tiny_model, free_port, http_call, register

# The server the supervisor runs.
SERVER_MODULE = "kaizen.serving.server"
FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]
RISKY = {"amount_zscore": 4.0, "merchant_risk": 3.0, "velocity_1h": 0.0}
MODEL = "fraud-detector"
# Hang guard for a loaded two-core machine (not a speed target); the measured figure is printed.
START_TIMEOUT = 120.0


def _serve(home: Path, port: int, *args: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "kaizen.cli",
                "serve",
                "--http-port",
                str(port),
                "--no-feast",
                "--server-module",
                SERVER_MODULE,
                *args,
            ],
            env={**os.environ, "KAIZEN_HOME": str(home), "COLUMNS": "200"},
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def _wait(what: str, check: Callable[[], Any], timeout: float, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")


def _state(home: Path, port: int) -> dict[str, Any]:
    try:
        return dict(json.loads(state_path(home, port).read_text()))
    except (OSError, ValueError):
        return {}


def _state_when(
    home: Path, port: int, condition: Callable[[dict[str, Any]], Any]
) -> Callable[[], dict[str, Any] | None]:
    """A check for :func:`_wait`: the state once ``condition`` holds for it, else None."""

    def check() -> dict[str, Any] | None:
        state = _state(home, port)
        return state if condition(state) else None

    return check


def _predicts(port: int) -> bool:
    try:
        status, body = http_call(port, f"/v1/models/{MODEL}:predict", {"instances": [RISKY]})
    except OSError:
        return False
    return status == 200 and body["predictions"][0]["is_fraud"] is True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by its parent) is not alive for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _standby_warm(home: Path, port: int) -> int | None:
    """The standby's pid once it has finished its imports (it says so in the server log)."""
    pid = _state(home, port).get("standby_pid")
    log = home / "logs" / f"serve-{port}.log"
    if pid and f"standby (pid {pid}): {SERVER_MODULE} imported, waiting" in log.read_text(
        errors="replace"
    ):
        return int(pid)
    return None


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("supervisor-export") / "model", FEATURES)


@pytest.fixture(scope="module")
def supervised(
    tmp_path_factory: pytest.TempPathFactory, trained: Path
) -> Iterator[SimpleNamespace]:
    """`kaizen serve` over a registered tiny champion, ready to answer."""
    home = tmp_path_factory.mktemp("supervised-home")
    info = register(home, trained, "supervised-run", FEATURES)
    port = free_port()
    log = home / "kaizen-serve.out"
    process = _serve(home, port, log=log)
    try:
        started = time.monotonic()
        _wait("the first prediction", lambda: _predicts(port), START_TIMEOUT, log)
        print(f"\ncold start to first prediction: {time.monotonic() - started:.1f} s")
        yield SimpleNamespace(home=home, port=port, process=process, log=log, version=info.version)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_state_file_names_the_supervisor_and_its_child(supervised: SimpleNamespace) -> None:
    state = _wait(
        "state 'ready'",
        _state_when(supervised.home, supervised.port, lambda s: s.get("state") == "ready"),
        60,
    )

    assert state["supervisor_pid"] == supervised.process.pid
    assert _alive(state["child_pid"])
    assert state["restarts"] == 0
    assert state["port"] == supervised.port


def test_kill_9_of_the_server_is_healed_by_the_warm_standby(supervised: SimpleNamespace) -> None:
    home, port = supervised.home, supervised.port
    standby = _wait("a warm standby", lambda: _standby_warm(home, port), 90, supervised.log)
    victim = _state(home, port)["child_pid"]

    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    _wait("the server to go down", lambda: not _alive(victim), 60)
    _wait("predictions again", lambda: _predicts(port), 90, supervised.log)
    print(f"\nkill -9: predictions again after {time.monotonic() - killed:.2f} s")
    # Healing fast means the already-imported standby took over, not a cold start: the state
    # written once the restarted server is ready names the standby as the server.
    state = _wait(
        "the state 'ready' after the restart",
        _state_when(home, port, lambda s: s.get("state") == "ready" and s.get("restarts")),
        60,
        supervised.log,
    )
    assert state["child_pid"] == standby != victim
    assert state["restarts"] == 1
    assert state["last_exit"]["signal"] == "SIGKILL"
    assert state["last_exit"]["pid"] == victim
    # The next crash is covered too: a fresh standby is already preparing.
    fresh = _wait("a new standby", lambda: _state(home, port).get("standby_pid"), 60)
    assert fresh not in (standby, victim) and _alive(fresh)
    output = supervised.log.read_text()
    assert "server exited on signal SIGKILL after" in output
    assert "restarting in 0.5 s (restart 1)" in output
    assert f"server started from the warm standby (pid {standby})" in output
    assert "server ready again" in output


def test_sigterm_stops_the_server_and_the_supervisor_cleanly(supervised: SimpleNamespace) -> None:
    home, port = supervised.home, supervised.port
    ready = _wait("state 'ready'", _state_when(home, port, lambda s: s.get("state") == "ready"), 60)
    child = ready["child_pid"]

    supervised.process.send_signal(signal.SIGTERM)

    assert supervised.process.wait(timeout=60) == 0
    final = _state(home, port)
    assert final["state"] == "stopped"
    assert final["child_pid"] is None and final["standby_pid"] is None
    assert final["last_exit"] == {**final["last_exit"], "pid": child, "code": 0, "signal": None}
    assert not _alive(child)
    output = supervised.log.read_text()
    assert "received SIGTERM: sending SIGTERM to the server" in output
    assert "exited with code 0; supervisor stopped" in output
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # the port is free again


def test_a_champion_that_fails_to_load_is_logged_with_why_and_retried_after_a_wait(
    tmp_path: Path, trained: Path
) -> None:
    home = tmp_path / "corrupt-home"
    info = register(home, trained, "corrupt-run", FEATURES)
    model_file = Path(info.source.removeprefix("file://")) / "model.keras"
    with model_file.open("ab") as handle:
        handle.write(b"bytes that were never registered")
    port = free_port()
    log = tmp_path / "kaizen-serve.out"

    process = _serve(home, port, "--quiet", log=log)
    try:
        _wait(
            "the failed start",
            lambda: "(restart 1)" in log.read_text(errors="replace"),
            90,
            log,
        )
        output = log.read_text()
        assert "server exited with code 1 during startup" in output
        assert "restarting in 0.5 s (restart 1)" in output
        # The tail of the server's own output says why, without opening the log file.
        assert "last lines of its output" in output
        assert "model.keras is grown" in output
        # The log line comes just before the state file is rewritten: wait for the state.
        state = _wait(
            "the failed start in the state file",
            _state_when(home, port, lambda s: s.get("last_exit")),
            60,
            log,
        )
        assert state["last_exit"]["code"] == 1
        assert state["consecutive_failures"] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0


def _failing_supervisor(home: Path, port: int, backoff: str = "Backoff()") -> subprocess.Popen[str]:
    """A supervisor (with ``backoff``) whose server prints why it cannot load and exits 3."""
    script = (
        "import logging, sys\n"
        "from kaizen.serving.supervisor import Backoff, Supervisor\n"
        "logging.basicConfig(level=logging.INFO, format='%(message)s')\n"
        "failing = [sys.executable, '-c', "
        "\"print('cannot load fraud-detector: registry unreachable'); raise SystemExit(3)\"]\n"
        f"sys.exit(Supervisor(failing, port={port}, home=sys.argv[1], echo=None, "
        f"backoff={backoff}).run())\n"
    )
    return subprocess.Popen(
        [sys.executable, "-c", script, str(home)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_backoff_doubles_between_failed_starts(tmp_path: Path) -> None:
    """A server that dies at once is restarted after 0.5, 1, 2, 4 s: never a tight loop."""
    port = free_port()
    process = _failing_supervisor(tmp_path, port)
    started = time.monotonic()
    _wait(
        "the fourth failure", _state_when(tmp_path, port, lambda s: s.get("restarts", 0) >= 4), 90
    )
    # 0.5 + 1 + 2 s of waits before the fourth start: a tight loop would be far quicker.
    assert time.monotonic() - started >= 3.5

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)

    assert process.returncode == 0
    restarts = [line for line in output.splitlines() if "; restarting in" in line]
    delays = [line.split("restarting in ")[1].split(" s")[0] for line in restarts]
    # A loaded machine may have let a fifth failure happen before the stop arrived.
    assert delays[:4] == ["0.5", "1.0", "2.0", "4.0"], output
    assert all(line.startswith("server exited with code 3 after") for line in restarts)
    assert output.count("cannot load fraud-detector: registry unreachable") == len(restarts)
    state = _state(tmp_path, port)
    assert state["state"] == "stopped"
    assert state["consecutive_failures"] == len(restarts)
    assert state["last_exit"]["code"] == 3


def test_sigterm_ends_a_backoff_wait_instead_of_waiting_it_out(tmp_path: Path) -> None:
    port = free_port()
    # Ten minutes before the restart: only a stop that cuts the wait short returns in time.
    process = _failing_supervisor(tmp_path, port, "Backoff(initial=600.0, maximum=600.0)")
    try:
        waiting = _wait(
            "the wait after the first failure",
            _state_when(tmp_path, port, lambda s: s.get("state") == "restarting"),
            90,
        )
        assert waiting["next_start_in_seconds"] == 600.0

        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("the supervisor kept waiting out its 600 s backoff after SIGTERM")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0
    assert "restarting in 600.0 s (restart 1)" in output
    assert output.count("cannot load fraud-detector: registry unreachable") == 1  # no restart
    state = _state(tmp_path, port)
    assert state["state"] == "stopped"
    assert state["restarts"] == 1 and state["last_exit"]["code"] == 3


def test_no_champion_fails_fast_with_the_way_out(tmp_path: Path) -> None:
    home = tmp_path / "empty-home"

    result = subprocess.run(
        [sys.executable, "-m", "kaizen.cli", "serve", "--http-port", str(free_port())],
        env={**os.environ, "KAIZEN_HOME": str(home), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    assert "no champion model" in result.stderr
    assert "make run" in result.stderr and "kaizen promote" in result.stderr
    assert not (home / "serving").exists(), "no server may have been started"


@pytest.mark.parametrize(
    ("args", "code", "expected"),
    [
        (["--feature-repo", "/nowhere/feature_repo"], 2, "--feature-repo"),
        (["--threshold", "1.5"], 2, "--threshold"),
        (["--request-timeout", "0"], 2, "--request-timeout"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(
    tmp_path: Path, args: list[str], code: int, expected: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kaizen.cli", "serve", *args],
        env={**os.environ, "KAIZEN_HOME": str(tmp_path), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == code
    assert expected in result.stderr


def test_a_port_in_use_is_refused_up_front(tmp_path: Path, trained: Path) -> None:
    home = tmp_path / "busy-home"
    register(home, trained, "busy-run", FEATURES)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        result = subprocess.run(
            [sys.executable, "-m", "kaizen.cli", "serve", "--http-port", str(port), "--no-feast"],
            env={**os.environ, "KAIZEN_HOME": str(home), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert not state_path(home, port).exists()


def test_the_last_good_copy_of_a_registered_champion_loads_and_scores(
    tmp_path: Path, trained: Path
) -> None:
    """What the server keeps after a good load is a model that loads and scores again."""
    import numpy as np
    import pandas as pd

    from kaizen.platform.settings import Settings
    from kaizen.registry import download_model_version
    from kaizen.serving.last_good import recall, remember
    from kaizen.training.train import load_model, predict_proba

    home = tmp_path / "last-good-home"
    register(home, trained, "last-good-run", FEATURES)
    settings = Settings(home=home)
    local, info = download_model_version("champion", tmp_path / "download", settings)

    remember(MODEL, local, info.to_dict(), home=home)
    recalled = recall(MODEL, home=home)

    assert recalled is not None
    folder, version_info = recalled
    assert version_info["version"] == info.version
    model = load_model(folder / "model.keras", expected_sha256=version_info["sha256"])
    features = json.loads((folder / "features.json").read_text())
    risky = pd.DataFrame([[RISKY[name] for name in features]], columns=features)
    assert predict_proba(model, risky, features)[0] > 0.5
    assert np.isfinite(predict_proba(model, risky, features)).all()
