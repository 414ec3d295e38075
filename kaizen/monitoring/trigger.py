"""The retraining trigger: a monitoring breach starts one retraining on the data that exists.

:func:`on_breaches` is called with a check's report. For each breach it claims a record,
write-once, in the object store::

    monitoring/<model>/retrainings/<check>-<data fingerprint>.json

so a breach kind starts at most one retraining per data fingerprint, however many checks see
it and however many monitors run (the second writer of a record gets ``KeyExistsError`` and
starts nothing). The breaches newly claimed by one check start one retraining together, with
their reasons, then ``drift_detected`` and ``retraining_started`` are notified (``deliver``).
Retrainings are also rate-limited: none starts within ``KAIZEN_RETRAIN_MIN_INTERVAL_SECONDS``
of the previous one of the model (a rate-limited breach is not claimed, so a later check may
start it). The target is ``KAIZEN_RETRAIN_TARGET``:

- ``local``: ``kaizen run`` in a subprocess (:func:`local_starter`), output in
  ``logs/retrain-<fingerprint>.log``;
- ``kfp``: ``kaizen submit --run-name retrain-<fingerprint> --skip-existing`` through the
  library (the CLI builds it: :mod:`kaizen.pipeline` sits above this layer);
- ``github``: a ``repository_dispatch`` (:func:`github_starter`) that the ``retrain`` workflow
  receives (event ``drift-detected``, ``client_payload`` with ``source_uri`` and
  ``data_fingerprint``);
- ``none``: breaches are claimed and notified, nothing starts.

Each record holds the check, its reason, the target, the run name, the time, and whether the
start succeeded. A start that fails is recorded, notified and not retried for the same data.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kaizen.monitoring.monitor import Breach, MonitorReport
    from kaizen.platform.settings import Settings
    from kaizen.platform.storage import ObjectStore

logger = logging.getLogger("kaizen.monitoring.trigger")

RECORDS = "monitoring/{model}/retrainings/"
GITHUB_EVENT_TYPE = "drift-detected"


class RetrainError(RuntimeError):
    """A retraining that could not be started; the message says why (redacted)."""


@dataclass(frozen=True)
class RetrainRequest:
    """What to retrain on and why.

    Attributes:
        model: the registered model.
        fingerprint: the data fingerprint (``kaizen fingerprint``).
        source_uri: the transactions file; empty: synthetic data.
        reasons: the breaches newly claimed.
    """

    model: str
    fingerprint: str
    source_uri: str
    reasons: tuple[Breach, ...]

    @property
    def run_name(self) -> str:
        return f"retrain-{self.fingerprint}"


#: Starts a retraining; returns what was started (a run name, a URL); raises RetrainError.
Starter = Callable[[RetrainRequest], str]


@dataclass
class TriggerOutcome:
    """What the trigger did for one check.

    Attributes:
        status: ``no_breach``, ``duplicate`` (every breach already claimed for this data),
            ``rate_limited``, ``not_configured`` (target none), ``started`` or ``failed``.
        target: ``KAIZEN_RETRAIN_TARGET``.
        checks: the breaches claimed by this check.
        detail: what was started, or why not.
    """

    status: str
    target: str
    checks: list[str] = field(default_factory=list)
    detail: str = ""


def on_breaches(
    report: MonitorReport,
    *,
    settings: Settings,
    store: ObjectStore,
    fingerprint: str,
    starter: Starter | None,
    now: datetime | None = None,
) -> TriggerOutcome:
    """Claim the report's new breaches and start one retraining for them.

    Args:
        report: the check's report.
        settings: ``KAIZEN_RETRAIN_*`` and the notification channels.
        store: where the records go.
        fingerprint: the fingerprint of the data a retraining would train on.
        starter: starts the configured target (None with target ``none``).
        now: the current time (for the records and the rate limit).

    Returns:
        What happened.
    """
    from kaizen.platform.notify import Event, Notification, deliver
    from kaizen.platform.storage import KeyExistsError

    target = settings.retrain_target
    moment = now or datetime.now(UTC)
    if not report.breaches:
        return TriggerOutcome("no_breach", target)
    records = retraining_records(store, report.model)
    claimed = {(r.get("check"), r.get("fingerprint")) for r in records}
    new = [b for b in report.breaches if (b.check, fingerprint) not in claimed]
    if not new:
        return TriggerOutcome(
            "duplicate",
            target,
            detail=f"already claimed for data {fingerprint[:12]}: "
            + ", ".join(b.check for b in report.breaches),
        )
    if target != "none":
        last = _last_start(records)
        wait = settings.retrain_min_interval_seconds
        if last is not None and (moment - last).total_seconds() < wait:
            detail = (
                f"the last retraining started at {last.isoformat()}, less than "
                f"KAIZEN_RETRAIN_MIN_INTERVAL_SECONDS={wait:g} ago"
            )
            logger.warning("%s: %s; %s", report.model, _reasons(new), detail)
            return TriggerOutcome("rate_limited", target, detail=detail)
    request = RetrainRequest(report.model, fingerprint, settings.retrain_source_uri, ())
    won: list[Breach] = []
    for breach in new:
        record = {
            "check": breach.check,
            "reason": breach.reason,
            "fingerprint": fingerprint,
            "model_version": report.version,
            "target": target,
            "run_name": request.run_name,
            "claimed_at": moment.isoformat(),
        }
        try:
            store.put_bytes(_claim_key(report.model, breach.check, fingerprint), _json(record))
        except KeyExistsError:  # another monitor claimed it a moment ago
            continue
        won.append(breach)
    if not won:
        return TriggerOutcome("duplicate", target, detail="claimed by another monitor")
    request = RetrainRequest(report.model, fingerprint, settings.retrain_source_uri, tuple(won))
    checks = [b.check for b in won]
    details: dict[str, Any] = {
        "model_version": report.version,
        "breaches": "; ".join(b.reason for b in won),
        "data_fingerprint": fingerprint,
        "retrain_target": target,
    }
    deliver(
        Notification(
            pipeline=report.model,
            run=f"v{report.version}",
            state="BREACH",
            message=f"model {report.model} v{report.version}: {_reasons(won)}",
            details=details,
            event=Event.DRIFT_DETECTED,
        ),
        settings,
    )
    if target == "none" or starter is None:
        return TriggerOutcome(
            "not_configured", target, checks, "KAIZEN_RETRAIN_TARGET=none: nothing started"
        )
    try:
        started = starter(request)
    except RetrainError as error:
        _record_outcome(store, request, target, moment, started=False, detail=str(error))
        logger.error("%s: retraining on %s not started: %s", report.model, target, error)
        return TriggerOutcome("failed", target, checks, str(error))
    _record_outcome(store, request, target, moment, started=True, detail=started)
    deliver(
        Notification(
            pipeline=report.model,
            run=request.run_name,
            state="STARTED",
            message=f"retraining {request.run_name} started ({target}): {_reasons(won)}",
            details={**details, "started": started},
            event=Event.RETRAINING_STARTED,
        ),
        settings,
    )
    return TriggerOutcome("started", target, checks, started)


def retraining_records(store: ObjectStore, model: str) -> list[dict[str, Any]]:
    """Every claim and outcome record of ``model``'s retrainings."""
    prefix = RECORDS.format(model=model)
    return [json.loads(store.get_bytes(key)) for key in store.list(prefix) if key.endswith(".json")]


def retrainings_started(store: ObjectStore, model: str) -> dict[str, int]:
    """Retrainings started, by target (the ``kaizen_monitor_retrainings_total`` counter)."""
    counts: dict[str, int] = {}
    for record in retraining_records(store, model):
        if record.get("outcome") and record.get("started"):
            target = str(record.get("target"))
            counts[target] = counts.get(target, 0) + 1
    return counts


def _last_start(records: list[dict[str, Any]]) -> datetime | None:
    times = [
        datetime.fromisoformat(str(r["claimed_at"]))
        for r in records
        if r.get("outcome") and r.get("started") and r.get("claimed_at")
    ]
    return max(times) if times else None


def _claim_key(model: str, check: str, fingerprint: str) -> str:
    return f"{RECORDS.format(model=model)}{check}-{fingerprint}.json"


def _record_outcome(
    store: ObjectStore,
    request: RetrainRequest,
    target: str,
    moment: datetime,
    *,
    started: bool,
    detail: str,
) -> None:
    record = {
        "outcome": True,
        "started": started,
        "detail": detail,
        "target": target,
        "run_name": request.run_name,
        "fingerprint": request.fingerprint,
        "checks": [b.check for b in request.reasons],
        "reasons": [asdict(b) for b in request.reasons],
        "claimed_at": moment.isoformat(),
    }
    stamp = f"{moment:%Y%m%dT%H%M%S%f}"
    key = f"{RECORDS.format(model=request.model)}outcome-{request.fingerprint}-{stamp}.json"
    store.put_bytes(key, _json(record))


def _reasons(breaches: list[Breach] | tuple[Breach, ...]) -> str:
    return "; ".join(f"{b.check}: {b.reason}" for b in breaches)


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, indent=1, sort_keys=True).encode()


def github_starter(settings: Settings) -> Starter:
    """Start retraining with a ``repository_dispatch`` to ``KAIZEN_RETRAIN_GITHUB_REPOSITORY``.

    Raises:
        RetrainError: the repository or the token file is not configured or unreadable.
    """
    from kaizen.platform.redaction import redact_uri

    repository = settings.retrain_github_repository
    if not repository:
        raise RetrainError(
            "KAIZEN_RETRAIN_TARGET=github needs KAIZEN_RETRAIN_GITHUB_REPOSITORY (owner/name)"
        )
    token_file = settings.retrain_github_token_file
    if token_file is None:
        raise RetrainError("KAIZEN_RETRAIN_TARGET=github needs KAIZEN_RETRAIN_GITHUB_TOKEN_FILE")
    url = f"{settings.retrain_github_api_url.rstrip('/')}/repos/{repository}/dispatches"
    shown = redact_uri(url)

    def start(request: RetrainRequest) -> str:
        try:
            token = Path(token_file).read_text(encoding="utf-8").strip()
        except OSError as error:
            raise RetrainError(
                f"KAIZEN_RETRAIN_GITHUB_TOKEN_FILE: cannot read {token_file}: {error.strerror}"
            ) from None
        if not token:
            raise RetrainError(f"KAIZEN_RETRAIN_GITHUB_TOKEN_FILE: {token_file} is empty")
        payload: dict[str, str] = {"reason": _reasons(request.reasons)[:500]}
        if request.source_uri:
            payload |= {"source_uri": request.source_uri, "data_fingerprint": request.fingerprint}
        body = json.dumps({"event_type": GITHUB_EVENT_TYPE, "client_payload": payload}).encode()
        http = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {token}",
                "Content-Type": "application/json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
        )
        try:
            with urllib.request.urlopen(http, timeout=15) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            raise RetrainError(
                f"repository_dispatch to {shown}: HTTP {error.code} {error.reason}"
            ) from None
        except (urllib.error.URLError, OSError) as error:
            raise RetrainError(f"repository_dispatch to {shown}: {error}") from None
        if status not in (200, 201, 202, 204):
            raise RetrainError(f"repository_dispatch to {shown}: unexpected HTTP {status}")
        return f"repository_dispatch {GITHUB_EVENT_TYPE} to {repository}"

    return start


def local_starter(settings: Settings) -> Starter:
    """Start retraining as ``kaizen run`` in a subprocess of its own session.

    The run trains on ``KAIZEN_RETRAIN_SOURCE_URI`` (synthetic data when empty); its output
    goes to ``logs/retrain-<fingerprint>.log`` under ``KAIZEN_HOME``.
    """

    def start(request: RetrainRequest) -> str:
        command = [sys.executable, "-m", "kaizen.cli", "run"]
        if request.source_uri:
            command += ["--source", request.source_uri]
        log_path = settings.logs_dir / f"{request.run_name}.log"
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    env={**os.environ, "KAIZEN_HOME": str(settings.home)},
                )
        except OSError as error:
            raise RetrainError(f"cannot start kaizen run: {error}") from None
        return f"kaizen run (pid {process.pid}), log {log_path}"

    return start
