"""A champion whose registry files go bad is served from the last copy that loaded.

Real parts: a real registry, a real server process on 127.0.0.1, the registry's own
``model.keras`` damaged on disk between two starts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.serving import MODEL, ServerProcess, export_tiny_model, http_call, register

FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]
VECTOR = {"amount_zscore": 3.0, "merchant_risk": 1.0, "velocity_1h": 0.0}
SERVER_MODULE = "kaizen.serving.server"
PREDICT = f"/v1/models/{MODEL}:predict"


def _damage(info: object) -> Path:
    model_file = Path(str(info.source).removeprefix("file://")) / "model.keras"  # type: ignore[attr-defined]
    with model_file.open("ab") as handle:
        handle.write(b"bytes that were never registered")
    return model_file


def test_a_damaged_champion_never_replaces_the_copy_that_worked(tmp_path: Path) -> None:
    home = tmp_path / "home"
    export = export_tiny_model(tmp_path / "export", FEATURES)
    info = register(home, export, "last-good-run", FEATURES)
    with ServerProcess(home, module=SERVER_MODULE) as first:
        status, body = http_call(first.port, PREDICT, {"instances": [VECTOR]})
    assert status == 200
    served = body["predictions"][0]
    assert served["model_version"] == info.version

    _damage(info)
    with ServerProcess(home, module=SERVER_MODULE) as second:
        status, body = http_call(second.port, PREDICT, {"instances": [VECTOR]})
        log = second.log_path.read_text(errors="replace")

    assert status == 200
    again = body["predictions"][0]
    assert again["model_version"] == info.version
    assert again["fraud_probability"] == pytest.approx(served["fraud_probability"], abs=1e-7)
    # The operator is told what failed and what is served instead.
    assert "failed to load" in log
    assert f"serving the last good copy, version {info.version}" in log


@pytest.mark.slow
def test_a_tampered_last_good_copy_is_refused_and_the_start_fails_naming_why(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    export = export_tiny_model(tmp_path / "export", FEATURES)
    info = register(home, export, "tampered-run", FEATURES)
    with ServerProcess(home, module=SERVER_MODULE):
        pass
    copies = [p for p in (home / "serving" / "last-good").rglob("model.keras") if p.is_file()]
    assert len(copies) == 1
    with copies[0].open("ab") as handle:
        handle.write(b"tampered")
    _damage(info)

    with (
        pytest.raises(AssertionError, match="server exited") as failed,
        ServerProcess(home, module=SERVER_MODULE, ready_timeout=90),
    ):
        pass

    message = str(failed.value)
    assert "refusing the last-good copy" in message
    assert "Traceback" not in message.split("kaizen serving stopped")[-1]
