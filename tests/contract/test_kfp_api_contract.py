"""Contract tests of ``kaizen upload/submit/schedule`` against a stand-in KFP API. Not KFP.

No Kubeflow Pipelines runs here. ``fake_kfp_api.FakeKfpApi`` is a real HTTP server on
127.0.0.1 that checks every request against KFP 2.17's own swagger (unknown fields refused,
the multipart upload included), requires the bearer token, and answers as KFP's API server
does: its response shapes, its error bodies, 401/403/404/409, its parameter and schedule
rules. The commands run through Typer's CliRunner with a real object store under the test's
KAIZEN_HOME, so what a user types, what reaches the wire and what KFP would hold are all
checked together.
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import shutil
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import urllib3
from typer.testing import CliRunner, Result

from kaizen.cli import app
from kaizen.pipeline.cron import validate_cron
from kaizen.pipeline.kfp_api import (
    KfpClient,
    KfpUnreachableError,
    find_version,
    publish_pipeline_version,
)


def _load_fake_api() -> ModuleType:
    # Test folders have no __init__.py (importlib import mode), so load the helper by path.
    path = Path(__file__).with_name("fake_kfp_api.py")
    spec = importlib.util.spec_from_file_location("fake_kfp_api", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_kfp_api"] = module
    spec.loader.exec_module(module)
    return module


fake_kfp_api = _load_fake_api()
FakeKfpApi = fake_kfp_api.FakeKfpApi

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_YAML = ROOT / "pipelines" / "training_pipeline.yaml"
TOKEN = "eyJhbGciOiJSUzI1NiJ9.kaizen-test-token.c2lnbmF0dXJl"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
runner = CliRunner()


@pytest.fixture(autouse=True)
def no_kfp_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test says which KFP it talks to; none comes from the developer's environment."""
    for variable in (
        "KAIZEN_KFP_HOST",
        "KAIZEN_KFP_TOKEN_FILE",
        "KAIZEN_KFP_NAMESPACE",
        "KAIZEN_KFP_UI_URL",
        "KAIZEN_KFP_CA_FILE",
        "KAIZEN_KFP_VERIFY_TLS",
        "KAIZEN_KFP_SERVICE_ACCOUNT",
        "KAIZEN_PIPELINE_NAME",
        "KAIZEN_STORAGE_BACKEND",
    ):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def fake() -> Iterator[Any]:
    with FakeKfpApi(token=TOKEN) as server:
        yield server
        assert server.self_check_errors == []


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "kfp-token"
    path.write_text(TOKEN + "\n")
    return path


@pytest.fixture
def kfp_env(fake: Any, token_file: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """KAIZEN_KFP_HOST and KAIZEN_KFP_TOKEN_FILE pointing at the stand-in."""
    monkeypatch.setenv("KAIZEN_KFP_HOST", fake.url)
    monkeypatch.setenv("KAIZEN_KFP_TOKEN_FILE", str(token_file))
    return fake


def flat(result: Result) -> str:
    """The command's output with line wrapping undone."""
    return " ".join(result.output.split())


def kaizen(*args: str) -> Result:
    return runner.invoke(app, list(args))


def upload(*extra: str, pipeline: Path = PIPELINE_YAML) -> Result:
    result = kaizen("upload", "--pipeline", str(pipeline), "--commit", COMMIT, *extra)
    assert result.exit_code == 0, result.output
    return result


def stored_version(kaizen_home: Path) -> str:
    index = kaizen_home / "objects" / "pipelines" / "kaizen-training" / "index.json"
    return str(json.loads(index.read_text())["versions"][-1]["version"])


def other_pipeline(tmp_path: Path) -> Path:
    """The committed YAML with another description: same inputs, another content hash."""
    text = PIPELINE_YAML.read_text()
    path = tmp_path / "changed.yaml"
    path.write_text(text.replace("Ingest card transactions", "Ingest card payments", 1))
    assert path.read_text() != text
    return path


# -- upload ------------------------------------------------------------------------------------


def test_first_upload_creates_the_pipeline_with_the_stored_version(
    fake: Any, token_file: Path, kaizen_home: Path
) -> None:
    result = upload("--kfp-host", fake.url, "--token-file", str(token_file))
    version = stored_version(kaizen_home)
    assert f"uploaded version {version} of pipeline 'kaizen-training' (new pipeline)" in flat(
        result
    )
    [pipeline] = fake.pipelines
    assert pipeline["name"] == "kaizen-training"
    [stored] = fake.versions
    assert stored["name"] == version and stored["pipeline_id"] == pipeline["pipeline_id"]
    assert stored["pipeline_spec"]["pipelineInfo"]["name"] == "kaizen-training"
    assert f"{fake.url}/#/pipelines/details/{pipeline['pipeline_id']}/version/" in flat(result)
    [multipart] = [r for r in fake.requests if r.path.endswith("/upload_version")]
    filename, content = multipart.parts["uploadfile"]
    assert filename == "pipeline.yaml" and content == PIPELINE_YAML.read_bytes()
    assert {r.headers["authorization"] for r in fake.requests} == {f"Bearer {TOKEN}"}


def test_a_second_upload_reports_the_version_kfp_already_has(
    kfp_env: Any, kaizen_home: Path
) -> None:
    upload()
    result = upload()
    version = stored_version(kaizen_home)
    assert f"KFP already has version {version} of pipeline 'kaizen-training'" in flat(result)
    assert "nothing uploaded" in flat(result)
    assert len(kfp_env.versions) == 1 and len(kfp_env.pipelines) == 1
    # KFP refused the duplicate name with 409; the command looked the version up instead.
    upload_answers = [
        status for _, path, status in kfp_env.answers if path.endswith("upload_version")
    ]
    assert upload_answers == [200, 409]


def test_a_new_version_joins_the_existing_pipeline(
    kfp_env: Any, kaizen_home: Path, tmp_path: Path
) -> None:
    upload()
    first = stored_version(kaizen_home)
    result = upload(pipeline=other_pipeline(tmp_path))
    second = stored_version(kaizen_home)
    assert second != first
    assert f"uploaded version {second} of pipeline 'kaizen-training' to KFP" in flat(result)
    assert "(new pipeline)" not in flat(result)
    assert len(kfp_env.pipelines) == 1
    assert sorted(v["name"] for v in kfp_env.versions) == sorted([first, second])


def test_without_a_host_the_pipeline_goes_to_the_bucket_only(fake: Any, kaizen_home: Path) -> None:
    result = upload()
    assert "uploaded pipeline 'kaizen-training' version" in flat(result)
    assert "KFP" not in result.output
    assert fake.requests == []


# -- submit ------------------------------------------------------------------------------------


def test_submit_starts_a_run_with_typed_parameters_and_prints_its_link(
    kfp_env: Any, kaizen_home: Path
) -> None:
    upload()
    result = kaizen(
        "submit", "-p", "epochs=3", "-p", "drift=0.25", "-p", "source_uri=s3://kaizen/tx.csv"
    )
    assert result.exit_code == 0, result.output
    [run] = kfp_env.runs
    version = stored_version(kaizen_home)
    assert f"started run {run['run_id']} of pipeline 'kaizen-training' version {version}" in flat(
        result
    )
    assert f"{kfp_env.url}/#/runs/details/{run['run_id']}" in result.output
    assert run["runtime_config"]["parameters"] == {
        "epochs": 3,
        "drift": 0.25,
        "source_uri": "s3://kaizen/tx.csv",
    }
    assert run["service_account"] == "kaizen-pipeline-runner"
    [experiment] = kfp_env.experiments
    assert experiment["display_name"] == "kaizen-training"
    assert run["experiment_id"] == experiment["experiment_id"]
    [stored] = kfp_env.versions
    assert run["pipeline_version_reference"] == {
        "pipeline_id": stored["pipeline_id"],
        "pipeline_version_id": stored["pipeline_version_id"],
    }


def test_submit_runs_the_newest_stored_version_unless_told(
    kfp_env: Any, kaizen_home: Path, tmp_path: Path
) -> None:
    upload()
    first = stored_version(kaizen_home)
    upload(pipeline=other_pipeline(tmp_path))
    ids = {v["name"]: v["pipeline_version_id"] for v in kfp_env.versions}
    assert kaizen("submit").exit_code == 0
    assert kaizen("submit", "--version", first, "--experiment", "backfill").exit_code == 0
    newest, pinned = kfp_env.runs
    assert (
        newest["pipeline_version_reference"]["pipeline_version_id"]
        == ids[stored_version(kaizen_home)]
    )
    assert pinned["pipeline_version_reference"]["pipeline_version_id"] == ids[first]
    assert sorted(e["display_name"] for e in kfp_env.experiments) == ["backfill", "kaizen-training"]


def test_a_second_submit_reuses_the_experiment(kfp_env: Any) -> None:
    upload()
    assert kaizen("submit").exit_code == 0
    assert kaizen("submit", "--run-name", "nightly by hand").exit_code == 0
    assert len(kfp_env.experiments) == 1
    assert [r["display_name"] for r in kfp_env.runs][1] == "nightly by hand"


def test_skip_existing_starts_a_named_run_once(kfp_env: Any) -> None:
    """The retrain workflow's dedupe: the same run name (a data fingerprint) runs once."""
    upload()
    first = kaizen("submit", "--run-name", "retrain-abc123", "--skip-existing")
    assert first.exit_code == 0, first.output
    again = kaizen("submit", "--run-name", "retrain-abc123", "--skip-existing")
    assert again.exit_code == 0, again.output
    assert len(kfp_env.runs) == 1
    run_id = kfp_env.runs[0]["run_id"]
    assert "already exists" in flat(again) and run_id in flat(again)
    other = kaizen("submit", "--run-name", "retrain-def456", "--skip-existing")
    assert other.exit_code == 0
    assert [r["display_name"] for r in kfp_env.runs] == ["retrain-abc123", "retrain-def456"]
    # Without the flag the same name starts another run, as KFP allows.
    assert kaizen("submit", "--run-name", "retrain-abc123").exit_code == 0
    assert len(kfp_env.runs) == 3


def test_skip_existing_needs_a_run_name(kfp_env: Any) -> None:
    upload()
    result = kaizen("submit", "--skip-existing")
    assert result.exit_code == 2
    assert "--run-name" in flat(result)
    assert kfp_env.runs == []


def test_an_unknown_parameter_exits_2_listing_the_valid_names_before_any_request(
    kfp_env: Any,
) -> None:
    upload()
    sent = len(kfp_env.requests)
    result = kaizen("submit", "-p", "epoch=3")
    assert result.exit_code == 2
    text = flat(result)
    assert "has no parameter 'epoch' (did you mean 'epochs'?)" in text
    assert "valid names: batch_size, cost_false_alarm, cost_missed_fraud, customers, days" in text
    assert len(kfp_env.requests) == sent and kfp_env.runs == []


@pytest.mark.parametrize(
    ("assignment", "expected"),
    [
        ("epochs=ten", "parameter 'epochs' expects an integer (NUMBER_INTEGER), got 'ten'"),
        ("drift=high", "parameter 'drift' expects a number (NUMBER_DOUBLE), got 'high'"),
        ("epochs", "expected NAME=VALUE, got 'epochs'"),
    ],
)
def test_a_bad_value_exits_2_naming_the_expected_type_before_any_request(
    kfp_env: Any, assignment: str, expected: str
) -> None:
    upload()
    sent = len(kfp_env.requests)
    result = kaizen("submit", "-p", assignment)
    assert result.exit_code == 2
    assert expected in flat(result)
    assert len(kfp_env.requests) == sent


def test_what_the_client_checks_is_what_kfp_checks(kfp_env: Any, token_file: Path) -> None:
    """A value of the wrong JSON kind, sent anyway, is refused by the server for the same reason."""
    upload()
    client = KfpClient(kfp_env.url, token_file=token_file)
    version = find_version(client, "kaizen-training")
    body = {
        "display_name": "typed wrong",
        "pipeline_version_reference": {
            "pipeline_id": version.pipeline_id,
            "pipeline_version_id": version.version_id,
        },
        "runtime_config": {"parameters": {"epochs": "3"}},
    }
    with pytest.raises(Exception, match="input parameter epochs requires type double or integer"):
        client.create_run(body)


def test_an_unknown_stored_version_exits_2_without_a_request(kfp_env: Any) -> None:
    upload()
    sent = len(kfp_env.requests)
    result = kaizen("submit", "--version", "0000000000000000")
    assert result.exit_code == 2
    assert "pipeline 'kaizen-training' has no stored version '0000000000000000'" in flat(result)
    assert len(kfp_env.requests) == sent


def test_nothing_stored_says_to_upload_first(kfp_env: Any) -> None:
    result = kaizen("submit")
    assert result.exit_code == 2
    assert "no version of pipeline 'kaizen-training' in the object store" in flat(result)
    assert kfp_env.requests == []


def test_a_pipeline_kfp_does_not_have_is_named_with_its_404(
    kfp_env: Any, kaizen_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KAIZEN_KFP_HOST")
    upload()  # the bucket only
    monkeypatch.setenv("KAIZEN_KFP_HOST", kfp_env.url)
    result = kaizen("submit")
    assert result.exit_code == 1
    assert f"KFP at {kfp_env.url} has no pipeline 'kaizen-training'" in flat(result)
    assert ("GET", "/apis/v2beta1/pipelines/names/kaizen-training", 404) in kfp_env.answers

    upload()  # now in KFP too
    monkeypatch.delenv("KAIZEN_KFP_HOST")
    upload(pipeline=other_pipeline(tmp_path))  # a newer version in the bucket only
    monkeypatch.setenv("KAIZEN_KFP_HOST", kfp_env.url)
    result = kaizen("submit")
    assert result.exit_code == 1
    missing = stored_version(kaizen_home)
    assert f"pipeline 'kaizen-training' has no version '{missing}'" in flat(result)
    assert kfp_env.runs == []


# -- schedule ----------------------------------------------------------------------------------


def test_schedule_lifecycle_create_list_disable_enable_delete(kfp_env: Any) -> None:
    upload()
    result = kaizen(
        "schedule", "create", "--cron", "0 0 2 * * *", "--max-concurrency", "2", "-p", "epochs=5"
    )
    assert result.exit_code == 0, result.output
    [recurring] = kfp_env.recurring_runs
    rid = recurring["recurring_run_id"]
    assert f"created recurring run {rid}" in flat(result)
    assert "cron '0 0 2 * * *', at most 2 at once, no catch-up; enabled" in flat(result)
    assert f"{kfp_env.url}/#/recurringrun/details/{rid}" in result.output
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert recurring["max_concurrency"] == "2" and recurring["no_catchup"] is True
    assert recurring["mode"] == "ENABLE" and recurring["status"] == "ENABLED"
    assert recurring["runtime_config"]["parameters"] == {"epochs": 5}
    assert recurring["service_account"] == "kaizen-pipeline-runner"

    listed = kaizen("schedule", "list")
    assert listed.exit_code == 0 and rid in flat(listed) and "enabled" in listed.output

    disabled = kaizen("schedule", "disable", rid)
    assert disabled.exit_code == 0 and f"recurring run {rid}" in flat(disabled)
    assert "is disabled" in flat(disabled)
    assert kfp_env.recurring_runs[0]["status"] == "DISABLED"
    assert "disabled" in kaizen("schedule", "list").output

    enabled = kaizen("schedule", "enable", rid)
    assert enabled.exit_code == 0 and "is enabled" in flat(enabled)
    assert kfp_env.recurring_runs[0]["status"] == "ENABLED"

    deleted = kaizen("schedule", "delete", rid)
    assert deleted.exit_code == 0 and kfp_env.recurring_runs == []
    assert "no recurring runs" in kaizen("schedule", "list").output

    again = kaizen("schedule", "delete", rid)
    assert again.exit_code == 1
    assert f"has no recurring run {rid} (404" in flat(again)


def test_catch_up_is_off_unless_asked(kfp_env: Any) -> None:
    upload()
    assert kaizen("schedule", "create", "--cron", "@daily", "--catchup").exit_code == 0
    assert kfp_env.recurring_runs[0]["no_catchup"] is False


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--cron", "0 2 * * *"], "write '0 0 2 * * *'"),
        (["--cron", "0 0 25 * * *"], "hour '25' is outside 0-23"),
        (["--cron", "@daily", "--max-concurrency", "11"], "between 1 and 10 (KFP's limit), got 11"),
        (["--cron", "@daily", "-p", "epochs=many"], "expects an integer (NUMBER_INTEGER)"),
    ],
)
def test_schedule_refuses_bad_input_before_any_request(
    kfp_env: Any, args: list[str], expected: str
) -> None:
    upload()
    sent = len(kfp_env.requests)
    result = kaizen("schedule", "create", *args)
    assert result.exit_code == 2
    assert expected in flat(result)
    assert len(kfp_env.requests) == sent


@pytest.mark.parametrize(
    "spec",
    ["0 0 2 * * *", "0 */15 * * * *", "30 0 9-17 * * mon-fri", "0 5/10 * * * *", "@every 6h"],
)
def test_every_cron_we_accept_parses_as_kfp_parses_it(spec: str) -> None:
    assert fake_kfp_api.robfig_cron_error(validate_cron(spec)) is None


def test_a_five_field_crontab_line_kfp_would_misread_is_accepted_by_kfp() -> None:
    """Why the client refuses it: KFP takes it, as 'second 0 of minute 2 of every hour'."""
    assert fake_kfp_api.robfig_cron_error("0 2 * * *") is None


# -- auth, errors, transport -------------------------------------------------------------------


def test_a_refused_token_is_a_401_and_never_printed(
    fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = tmp_path / "wrong-token"
    wrong.write_text("wrong-secret-token-value\n")
    monkeypatch.setenv("KAIZEN_KFP_HOST", fake.url)
    result = kaizen("upload", "--commit", COMMIT, "--token-file", str(wrong))
    assert result.exit_code == 1
    text = flat(result)
    assert f"KFP refused the token (401) at {fake.url}" in text
    assert f"sent the token from {wrong}" in text
    assert "wrong-secret-token-value" not in result.output
    assert fake.pipelines == []
    # The bucket copy was stored before KFP refused, so submit gets as far as KFP.
    result = kaizen("submit", "--token-file", str(wrong))
    assert result.exit_code == 1 and "KFP refused the token (401)" in flat(result)
    assert "wrong-secret-token-value" not in result.output


def test_no_token_at_all_says_how_to_give_one(fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAIZEN_KFP_HOST", fake.url)
    result = kaizen("schedule", "list")
    assert result.exit_code == 1
    assert "a request without a token (give one with --token-file" in flat(result)


def test_a_token_without_permission_is_a_403(tmp_path: Path) -> None:
    denied = tmp_path / "denied"
    denied.write_text("read-only-token")
    with FakeKfpApi(token=TOKEN, forbidden_tokens=("read-only-token",)) as server:
        result = kaizen("schedule", "list", "--kfp-host", server.url, "--token-file", str(denied))
        assert server.self_check_errors == []
    assert result.exit_code == 1
    assert "KFP refused the token (403)" in flat(result) and "is not authorized" in flat(result)


def test_a_token_file_that_cannot_be_read_exits_2_naming_it(
    fake: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAIZEN_KFP_HOST", fake.url)
    result = kaizen("schedule", "list", "--token-file", str(tmp_path / "absent"))
    assert result.exit_code == 2
    assert f"cannot read the KFP token file {tmp_path}/absent" in flat(result)
    assert fake.requests == []


def test_the_token_is_re_read_for_every_request(fake: Any, tmp_path: Path) -> None:
    rotating = tmp_path / "token"
    rotating.write_text("stale-token")
    client = KfpClient(fake.url, token_file=rotating)
    with pytest.raises(Exception, match=r"KFP refused the token \(401\)"):
        client.list_recurring_runs()
    rotating.write_text(TOKEN)  # the kubelet rotated the projected token
    assert client.list_recurring_runs() == []


def test_an_unreachable_host_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    host = f"http://127.0.0.1:{port}"
    result = kaizen("schedule", "list", "--kfp-host", host)
    assert result.exit_code == 1
    assert f"cannot reach KFP at {host}: connection refused" in flat(result)


def test_no_host_anywhere_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAIZEN_KFP_HOST", raising=False)
    result = kaizen("submit")
    assert result.exit_code == 2
    assert "give --kfp-host or set KAIZEN_KFP_HOST" in flat(result)


def test_a_busy_server_is_retried_for_reads_but_a_run_is_never_created_twice(
    kfp_env: Any,
) -> None:
    upload()
    unavailable = {"code": 14, "message": "upstream connect error"}
    kfp_env.fail_next("PipelineService_GetPipelineByName", 503, unavailable, times=1)
    kfp_env.fail_next("RunService_CreateRun", 503, unavailable, times=1)
    result = kaizen("submit")
    assert result.exit_code == 1
    assert "POST" in flat(result) and "failed with 503: upstream connect error" in flat(result)
    by_name = [s for m, p, s in kfp_env.answers if p.endswith("/names/kaizen-training")]
    assert by_name[-2:] == [503, 200]
    assert [s for m, p, s in kfp_env.answers if m == "POST" and p.endswith("/runs")] == [503]
    assert kfp_env.runs == []


class _LoginRedirect(BaseHTTPRequestHandler):
    """What a Kubeflow gateway does with a request it does not accept: send it to Dex."""

    def do_GET(self) -> None:
        self.send_response(302)
        self.send_header("Location", "https://dex.example.com/dex/auth?client_id=kubeflow")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_login_redirect_is_reported_as_a_refused_token() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LoginRedirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"http://127.0.0.1:{server.server_address[1]}/pipeline"
        result = kaizen("schedule", "list", "--kfp-host", host)
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 1
    assert "answered 302 redirecting to dex.example.com (a login page?)" in flat(result)


def test_multi_user_kfp_gets_the_profile_namespace(
    token_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeKfpApi(token=TOKEN, multi_user=True) as server:
        monkeypatch.setenv("KAIZEN_KFP_HOST", server.url)
        monkeypatch.setenv("KAIZEN_KFP_TOKEN_FILE", str(token_file))
        monkeypatch.setenv("KAIZEN_KFP_NAMESPACE", "team-fraud")
        upload()
        assert kaizen("submit").exit_code == 0
        assert kaizen("schedule", "create", "--cron", "@hourly").exit_code == 0
        listed = kaizen("schedule", "list")
        assert listed.exit_code == 0
        assert server.recurring_runs[0]["recurring_run_id"] in flat(listed)
        assert server.pipelines[0]["namespace"] == "team-fraud"
        assert server.experiments[0]["namespace"] == "team-fraud"

        monkeypatch.delenv("KAIZEN_KFP_NAMESPACE")
        result = kaizen("schedule", "list")
        assert result.exit_code == 1
        assert "requires a namespace" in flat(result)
        assert server.self_check_errors == []


# -- TLS ---------------------------------------------------------------------------------------


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate it signed for 127.0.0.1: (ca, cert, key) files."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kaizen test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "cert.pem", directory / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_tls_is_verified_and_a_cluster_ca_can_be_given(tmp_path: Path, token_file: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with FakeKfpApi(token=TOKEN, tls=context) as server:
        assert server.url.startswith("https://")
        untrusted = KfpClient(server.url, token_file=token_file)
        with pytest.raises(KfpUnreachableError, match="KAIZEN_KFP_CA_FILE"):
            untrusted.list_recurring_runs()
        trusted = KfpClient(server.url, token_file=token_file, ca_file=ca)
        published = publish_pipeline_version(
            trusted,
            PIPELINE_YAML.read_bytes(),
            pipeline_name="kaizen-training",
            version_name="v1",
        )
        assert published.version.version_name == "v1"
        assert server.self_check_errors == []


# -- the stand-in itself answers as KFP does ---------------------------------------------------


def _raw(server: Any, method: str, path: str, body: Any = None, **query: str) -> tuple[int, Any]:
    http = urllib3.PoolManager()
    response = http.request(
        method,
        f"{server.url}/apis/v2beta1{path}",
        fields=query or None,
        body=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    return response.status, json.loads(response.data)


def test_the_stand_in_refuses_unknown_fields_and_bad_types_as_grpc_gateway_does(fake: Any) -> None:
    status, answer = _raw(fake, "POST", "/pipelines", {"name": "p", "nickname": "x"})
    assert status == 400 and answer["code"] == 3 and "nickname" in answer["message"]
    status, answer = _raw(fake, "POST", "/experiments", {"display_name": 3})
    assert status == 400 and answer["code"] == 3
    status, answer = _raw(fake, "GET", "/recurringruns", pagesize="1")
    assert status == 400 and "pagesize" in answer["message"]


def test_the_stand_in_answers_404_and_409_with_kfps_error_bodies(fake: Any) -> None:
    status, answer = _raw(fake, "GET", "/pipelines/no-such-id")
    assert status == 404
    assert (
        answer["code"] == 5 and answer["details"][0]["message"] == "Pipeline no-such-id not found"
    )
    assert _raw(fake, "POST", "/pipelines", {"name": "p"})[0] == 200
    status, answer = _raw(fake, "POST", "/pipelines", {"name": "p"})
    assert status == 409 and answer["code"] == 6
    status, answer = _raw(fake, "GET", "/nothing/here")
    assert status == 404 and answer == {"code": 5, "message": "Not Found"}


def test_the_stand_in_checks_recurring_run_rules(fake: Any, token_file: Path) -> None:
    client = KfpClient(fake.url, token_file=token_file)
    published = publish_pipeline_version(
        client, PIPELINE_YAML.read_bytes(), pipeline_name="p", version_name="v"
    )
    base = {
        "display_name": "r",
        "pipeline_version_reference": {"pipeline_id": published.version.pipeline_id},
        "trigger": {"cron_schedule": {"cron": "0 0 2 * * *"}},
    }
    status, answer = _raw(fake, "POST", "/recurringruns", {**base, "max_concurrency": "11"})
    assert status == 400 and "at most 10" in answer["details"][0]["message"]
    status, answer = _raw(fake, "POST", "/recurringruns", {**base, "max_concurrency": "1x"})
    assert status == 400 and answer["code"] == 3
    bad_cron = {
        **base,
        "max_concurrency": "1",
        "trigger": {"cron_schedule": {"cron": "0 0 99 * * *"}},
    }
    status, answer = _raw(fake, "POST", "/recurringruns", bad_cron)
    assert (
        status == 400 and "End of range (99) above maximum (23)" in answer["details"][0]["message"]
    )


def test_the_stand_in_refuses_an_upload_that_is_not_a_pipeline(fake: Any, tmp_path: Path) -> None:
    shutil.copy(PIPELINE_YAML, tmp_path / "p.yaml")
    client = KfpClient(fake.url, token_file=None)
    fake.token = None  # single-user KFP behind a port-forward: no auth
    pipeline = client.create_pipeline("p")
    with pytest.raises(Exception, match="400: Invalid input error"):
        client.upload_pipeline_version(pipeline["pipeline_id"], "v", b"hello: world\n")
