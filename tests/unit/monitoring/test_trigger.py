"""The retraining trigger against a real HTTP receiver standing in for GitHub's API: one
dispatch per breach kind and data fingerprint, rate-limited, recorded and notified."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import AnyHttpUrl

from kaizen.monitoring.monitor import Breach, MonitorReport
from kaizen.monitoring.trigger import (
    github_starter,
    on_breaches,
    retraining_records,
    retrainings_started,
)
from kaizen.platform.settings import Settings
from kaizen.platform.storage import LocalObjectStore
from tests.support.webhook import Webhook

MODEL = "fraud-detector"
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
DATA = "a" * 64
NEW_DATA = "b" * 64


def report(*checks: str) -> MonitorReport:
    return MonitorReport(
        model=MODEL,
        version=3,
        checked_at=T0.isoformat(),
        predictions=500,
        breaches=[Breach(check, f"{check} is off") for check in checks],
    )


@pytest.fixture
def github() -> Iterator[Webhook]:
    with Webhook() as receiver:
        yield receiver


@pytest.fixture
def notifications() -> Iterator[Webhook]:
    with Webhook() as receiver:
        yield receiver


def github_settings(tmp_path: Path, github: Webhook, notifications: Webhook) -> Settings:
    token = tmp_path / "github-token"
    token.write_text("ghp_not_a_real_token\n")
    return Settings(
        home=tmp_path / "home",
        retrain_target="github",
        retrain_min_interval_seconds=3600,
        retrain_source_uri="/data/transactions.parquet",
        retrain_github_repository="acme/kaizen",
        retrain_github_token_file=token,
        retrain_github_api_url=github.url.removesuffix("/hooks/kaizen"),
        webhook_url=AnyHttpUrl(notifications.url),
    )


def test_the_same_breach_and_data_start_one_retraining(
    tmp_path: Path, github: Webhook, notifications: Webhook
) -> None:
    settings = github_settings(tmp_path, github, notifications)
    store = LocalObjectStore(tmp_path / "objects")
    starter = github_starter(settings)

    first = on_breaches(
        report("feature_drift"),
        settings=settings,
        store=store,
        fingerprint=DATA,
        starter=starter,
        now=T0,
    )
    assert first.status == "started" and first.checks == ["feature_drift"]
    assert github.received == [
        {
            "event_type": "drift-detected",
            "client_payload": {
                "reason": "feature_drift: feature_drift is off",
                "source_uri": "/data/transactions.parquet",
                "data_fingerprint": DATA,
            },
        }
    ]
    assert [n["event"] for n in notifications.received] == [
        "drift_detected",
        "retraining_started",
    ]
    # Checks keep seeing the drift: no second retraining, no more notifications, even a day on.
    for hours in (0, 1, 48):
        again = on_breaches(
            report("feature_drift"),
            settings=settings,
            store=store,
            fingerprint=DATA,
            starter=starter,
            now=T0 + timedelta(hours=hours),
        )
        assert again.status == "duplicate"
    assert len(github.received) == 1 and len(notifications.received) == 2
    assert retrainings_started(store, MODEL) == {"github": 1}
    claims = [r for r in retraining_records(store, MODEL) if "check" in r]
    assert claims == [
        {
            "check": "feature_drift",
            "reason": "feature_drift is off",
            "fingerprint": DATA,
            "model_version": 3,
            "target": "github",
            "run_name": f"retrain-{DATA}",
            "claimed_at": T0.isoformat(),
        }
    ]


def test_retrainings_are_rate_limited_and_new_data_retrains_again(
    tmp_path: Path, github: Webhook, notifications: Webhook
) -> None:
    settings = github_settings(tmp_path, github, notifications)
    store = LocalObjectStore(tmp_path / "objects")
    starter = github_starter(settings)
    on_breaches(
        report("feature_drift"),
        settings=settings,
        store=store,
        fingerprint=DATA,
        starter=starter,
        now=T0,
    )
    # A new kind of breach half an hour later waits for the interval, and is not used up.
    limited = on_breaches(
        report("feature_drift", "live_recall"),
        settings=settings,
        store=store,
        fingerprint=DATA,
        starter=starter,
        now=T0 + timedelta(minutes=30),
    )
    assert (
        limited.status == "rate_limited" and "KAIZEN_RETRAIN_MIN_INTERVAL_SECONDS" in limited.detail
    )
    assert len(github.received) == 1
    later = on_breaches(
        report("feature_drift", "live_recall"),
        settings=settings,
        store=store,
        fingerprint=DATA,
        starter=starter,
        now=T0 + timedelta(hours=2),
    )
    assert later.status == "started" and later.checks == ["live_recall"]
    # New data (another fingerprint): the drift may retrain again once the interval passed.
    fresh = on_breaches(
        report("feature_drift"),
        settings=settings,
        store=store,
        fingerprint=NEW_DATA,
        starter=starter,
        now=T0 + timedelta(hours=4),
    )
    assert fresh.status == "started"
    assert [r["client_payload"]["data_fingerprint"] for r in github.received] == [
        DATA,
        DATA,
        NEW_DATA,
    ]
    assert retrainings_started(store, MODEL) == {"github": 3}


def test_a_refused_dispatch_is_recorded_and_not_retried_for_the_same_data(
    tmp_path: Path, notifications: Webhook
) -> None:
    with Webhook() as github:
        settings = github_settings(tmp_path, github, notifications)
    # The receiver is gone: the dispatch cannot connect.
    store = LocalObjectStore(tmp_path / "objects")
    outcome = on_breaches(
        report("score_drift"),
        settings=settings,
        store=store,
        fingerprint=DATA,
        starter=github_starter(settings),
        now=T0,
    )
    assert (
        outcome.status == "failed" and "repository_dispatch to http://127.0.0.1" in outcome.detail
    )
    assert "ghp_" not in outcome.detail
    assert retrainings_started(store, MODEL) == {}
    assert [n["event"] for n in notifications.received] == ["drift_detected"]


def test_target_none_notifies_once_and_starts_nothing(
    tmp_path: Path, notifications: Webhook
) -> None:
    settings = Settings(home=tmp_path / "home", webhook_url=AnyHttpUrl(notifications.url))
    store = LocalObjectStore(tmp_path / "objects")
    for _ in range(2):
        outcome = on_breaches(
            report("live_recall"),
            settings=settings,
            store=store,
            fingerprint=DATA,
            starter=None,
            now=T0,
        )
    assert outcome.status == "duplicate"
    assert [n["event"] for n in notifications.received] == ["drift_detected"]
    assert (
        on_breaches(report(), settings=settings, store=store, fingerprint=DATA, starter=None).status
        == "no_breach"
    )
