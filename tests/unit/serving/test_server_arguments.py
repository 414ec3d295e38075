"""``kaizen serve`` passes on only what the user chose; the server reads it back the same."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kaizen.serving.server import ServingConfig, parse_args, server_arguments
from kaizen.serving.supervisor import running_supervisor, state_path


def test_the_server_parses_back_exactly_the_options_chosen(tmp_path: Path) -> None:
    chosen = {
        "http_port": 18080,
        "model_name": "fraud-detector",
        "feature_repo": tmp_path,
        "threshold": 0.7,
        "request_timeout": 1.5,
        "canary": False,
        "access_log": True,
    }
    args = server_arguments({**chosen, "max_batch": None, "canary_share": None})

    assert "--max-batch" not in args and "--canary-share" not in args
    assert parse_args(args) == ServingConfig(**chosen)


def test_defaults_are_left_to_the_server() -> None:
    assert server_arguments({"canary": None, "access_log": None, "host": None}) == []
    assert parse_args(server_arguments({})) == ServingConfig()


def test_an_unknown_option_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"unknown server option\(s\) \['max_batches'\]"):
        server_arguments({"max_batches": 3})


def _write_state(home: Path, port: int, **state: object) -> None:
    path = state_path(home, port)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state))


def test_a_live_supervisor_is_found_and_a_stale_or_stopped_one_is_not(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        _write_state(tmp_path, 8080, state="running", supervisor_pid=child.pid)
        assert running_supervisor(tmp_path, 8080) == child.pid
        _write_state(tmp_path, 8080, state="stopped", supervisor_pid=child.pid)
        assert running_supervisor(tmp_path, 8080) is None
    finally:
        assert child.stdin is not None
        child.stdin.close()
        child.wait(timeout=60)
    # the process is gone: its state file is stale
    _write_state(tmp_path, 8080, state="running", supervisor_pid=child.pid)
    assert running_supervisor(tmp_path, 8080) is None
    assert running_supervisor(tmp_path, 9090) is None  # no state file
    state_path(tmp_path, 8081).write_text("{not json")
    assert running_supervisor(tmp_path, 8081) is None
