"""The recorded canary decision: written once, the first writer wins, every reader gets it.

The store is the real local object store (write-once through ``link``); the race runs in real
processes. The S3 backend's write-once (``If-None-Match``) is tested with the store itself,
and tests/integration/test_canary_replicas.py runs two servers against S3.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kaizen.platform.storage import LocalObjectStore
from kaizen.serving.canary import (
    CanaryDecision,
    CanaryRecord,
    decision_key,
    record_decision,
    recorded_decision,
)

MODEL = "fraud-detector"


def _record(action: str, reason: str = "because") -> CanaryRecord:
    return CanaryRecord.of(MODEL, 2, 1, CanaryDecision(action, reason, "rule"))  # type: ignore[arg-type]


def test_the_first_decision_is_recorded_and_a_later_one_gets_it_back(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    promote, rollback = _record("promote", "passed"), _record("rollback", "too slow")

    first = record_decision(store, promote)
    second = record_decision(store, rollback)

    assert first == (promote, True)
    assert second == (promote, False)
    assert recorded_decision(store, MODEL, 2) == promote
    assert list(store.list("canary/")) == ["canary/fraud-detector/2/decision.json"]


def test_no_record_is_none(tmp_path: Path) -> None:
    assert recorded_decision(LocalObjectStore(tmp_path), MODEL, 7) is None


def test_a_wait_is_never_recorded() -> None:
    with pytest.raises(ValueError, match="only a promote or rollback is recorded, got 'wait'"):
        _record("wait")


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1]", "expected a JSON object, got list"),
        (
            json.dumps({"model": MODEL, "action": "promote"}).encode(),
            "challenger_version: expected int, got nothing",
        ),
        (
            json.dumps(
                {**json.loads(_record("promote").to_json()), "challenger_version": "2"}
            ).encode(),
            "challenger_version: expected int, got str '2'",
        ),
        (
            json.dumps({**json.loads(_record("promote").to_json()), "action": "wait"}).encode(),
            "action: expected 'promote' or 'rollback', got 'wait'",
        ),
    ],
)
def test_a_damaged_record_is_refused_naming_the_object_and_field(
    tmp_path: Path, stored: bytes, expected: str
) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes(decision_key(MODEL, 2), stored)

    with pytest.raises(ValueError, match=r"decision\.json") as raised:
        recorded_decision(store, MODEL, 2)

    assert expected in str(raised.value)


RACER = r"""
import json, sys, time
from pathlib import Path
from kaizen.platform.storage import LocalObjectStore
from kaizen.serving.canary import CanaryDecision, CanaryRecord, record_decision

root, action, go, ready = sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4])
mine = CanaryRecord.of("fraud-detector", 2, 1, CanaryDecision(action, action, "rule"))
ready.touch()
deadline = time.monotonic() + 120  # a hang guard, not a speed bound
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit("start signal never came")
    time.sleep(0.001)
record, ours = record_decision(LocalObjectStore(root), mine)
print(json.dumps({"action": record.action, "decided_by": record.decided_by, "ours": ours}))
"""


def test_replicas_deciding_opposite_things_at_once_all_get_the_same_record(
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    store = tmp_path / "store"
    actions = ["promote", "rollback"] * 3
    ready = [tmp_path / f"ready-{index}" for index in range(len(actions))]
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, str(store), action, str(go), str(ready[index])],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index, action in enumerate(actions)
    ]
    deadline = time.monotonic() + 120  # a hang guard, not a speed bound
    while not all(path.exists() for path in ready):
        assert time.monotonic() < deadline, "racers did not get ready"
        assert all(racer.poll() is None for racer in racers), "a racer died early"
        time.sleep(0.01)
    go.touch()
    results = []
    for racer in racers:
        stdout, stderr = racer.communicate(timeout=300)
        assert racer.returncode == 0, stderr[-2000:]
        results.append(json.loads(stdout))

    assert sum(result["ours"] for result in results) == 1
    assert len({(result["action"], result["decided_by"]) for result in results}) == 1
    recorded = recorded_decision(LocalObjectStore(store), MODEL, 2)
    assert recorded is not None and recorded.action == results[0]["action"]
