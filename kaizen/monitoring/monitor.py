"""One monitoring check of the champion: drift, live performance, breaches, where they go.

:func:`check` reads the champion's recent predictions (``KAIZEN_MONITOR_WINDOW_HOURS``) and
its training reference (:mod:`kaizen.monitoring.reference`), measures each feature's and the
score's drift (:mod:`kaizen.monitoring.drift`) and the live metrics of the labelled predictions
(``KAIZEN_MONITOR_LABEL_WINDOW_HOURS``, :mod:`kaizen.monitoring.live`), and names the
**breaches**, one per check kind:

- ``feature_drift``: some feature's PSI above ``KAIZEN_MONITOR_PSI_THRESHOLD``;
- ``score_drift``: the score's PSI above ``KAIZEN_MONITOR_SCORE_PSI_THRESHOLD``;
- ``live_precision``, ``live_recall``, ``live_roc_auc``: below their ``KAIZEN_MONITOR_MIN_*``.

Too few predictions or labels judge nothing (the report says why). The result goes to
Prometheus (:class:`MonitorCollector`, the gauges below), to MLflow (one run per check in the
``monitoring`` experiment) and to the object store (``monitoring/<model>/last-check.json``,
which ``kaizen status`` shows).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from kaizen.monitoring.live import METRICS, LiveMetrics

if TYPE_CHECKING:
    import pandas as pd
    from prometheus_client.core import Metric

    from kaizen.monitoring.drift import Drift
    from kaizen.platform.settings import Settings
    from kaizen.platform.storage import ObjectStore

logger = logging.getLogger("kaizen.monitoring.monitor")

CHECKS = ("feature_drift", "score_drift", "live_precision", "live_recall", "live_roc_auc")
MLFLOW_EXPERIMENT = "monitoring"
LAST_CHECK = "monitoring/{model}/last-check.json"


class MonitorError(RuntimeError):
    """A check that cannot run (no champion); the message says what is missing."""


@dataclass(frozen=True)
class Breach:
    """One check that failed: its kind and a sentence a person reads."""

    check: str
    reason: str


@dataclass
class MonitorReport:
    """What one check found.

    Attributes:
        model: the registered model.
        version: the champion version checked.
        checked_at: when (ISO 8601 UTC).
        predictions: recent predictions of the champion compared with the reference.
        features: each feature's drift (empty when not judged).
        score: the score's drift (None when not judged).
        live: the live metrics.
        breaches: the failed checks.
        notes: why something was not judged.
    """

    model: str
    version: int
    checked_at: str
    predictions: int
    features: list[Drift] = field(default_factory=list)
    score: Drift | None = None
    live: LiveMetrics | None = None
    breaches: list[Breach] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def breached(self, check: str) -> bool:
        return any(breach.check == check for breach in self.breaches)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "checked_at": self.checked_at,
            "predictions": self.predictions,
            "features": [asdict(drift) for drift in self.features],
            "score": asdict(self.score) if self.score is not None else None,
            "live": asdict(self.live) if self.live is not None else None,
            "breaches": [asdict(breach) for breach in self.breaches],
            "notes": list(self.notes),
        }


def check(settings: Settings, store: ObjectStore, *, now: datetime | None = None) -> MonitorReport:
    """Check the champion's recent traffic against its reference and its live metrics.

    Args:
        settings: thresholds, windows and the registry.
        store: the object store holding the prediction log, labels and references.
        now: the check's time (default: the current time).

    Returns:
        The report (also stored as the last check for ``kaizen status``).

    Raises:
        MonitorError: the model has no champion.
        kaizen.monitoring.reference.ReferenceError: the champion's reference is damaged.
    """
    from kaizen.monitoring.labels import labelled_predictions
    from kaizen.monitoring.predictions import read_predictions
    from kaizen.monitoring.reference import load_reference
    from kaizen.registry import ModelRegistry

    moment = now or datetime.now(UTC)
    champion = ModelRegistry(settings).by_alias("champion")
    if champion is None:
        raise MonitorError(f"model {settings.model_name!r} has no champion to monitor")
    start = moment - timedelta(hours=settings.monitor_window_hours)
    recent = _champion_rows(
        read_predictions(store, settings.model_name, since=start.strftime("%Y-%m-%d")),
        champion.version,
        start,
    )
    report = MonitorReport(
        model=settings.model_name,
        version=champion.version,
        checked_at=moment.isoformat(),
        predictions=len(recent),
    )
    reference = load_reference(store, champion.tags)
    if reference is None:
        report.notes.append(
            f"v{champion.version} was registered without a training reference (before "
            "references were stored): drift is not judged, retrain to get one"
        )
    elif len(recent) < settings.monitor_min_predictions:
        report.notes.append(
            f"{len(recent)} recent prediction(s) of v{champion.version}, fewer than "
            f"KAIZEN_MONITOR_MIN_PREDICTIONS={settings.monitor_min_predictions}: drift not judged"
        )
    else:
        _judge_drift(report, reference, recent, settings)
    label_start = moment - timedelta(hours=settings.monitor_label_window_hours)
    labelled = _champion_rows(
        labelled_predictions(store, settings.model_name, since=label_start.strftime("%Y-%m-%d")),
        champion.version,
        label_start,
    )
    _judge_live(report, labelled, settings)
    return report


def _champion_rows(frame: pd.DataFrame, version: int, start: datetime) -> pd.DataFrame:
    import pandas as pd

    if frame.empty:
        return frame
    times = pd.to_datetime(frame["time"], utc=True)
    mask = (frame["model_version"].astype(int) == version) & (times >= pd.Timestamp(start))
    return frame[mask].reset_index(drop=True)


def _judge_drift(
    report: MonitorReport, reference: Any, recent: pd.DataFrame, settings: Settings
) -> None:
    from kaizen.monitoring.drift import drift

    missing = [name for name in reference.features if name not in recent.columns]
    if missing:
        report.notes.append(f"the prediction log lacks the feature(s) {missing}: not judged")
    for name, distribution in reference.features.items():
        if name in recent.columns:
            report.features.append(drift(name, distribution, recent[name].to_numpy()))
    drifted = [d for d in report.features if d.psi > settings.monitor_psi_threshold]
    if drifted:
        listed = ", ".join(f"{d.name} {d.psi:.3f}" for d in sorted(drifted, key=lambda d: -d.psi))
        report.breaches.append(
            Breach(
                "feature_drift",
                f"PSI above {settings.monitor_psi_threshold} on {len(recent)} predictions: "
                f"{listed}",
            )
        )
    if reference.score is not None:
        report.score = drift("score", reference.score, recent["score"].to_numpy())
        if report.score.psi > settings.monitor_score_psi_threshold:
            report.breaches.append(
                Breach(
                    "score_drift",
                    f"score PSI {report.score.psi:.3f} above "
                    f"{settings.monitor_score_psi_threshold}",
                )
            )


def _judge_live(report: MonitorReport, labelled: pd.DataFrame, settings: Settings) -> None:
    from kaizen.monitoring.live import live_metrics

    report.live = live_metrics(
        labelled,
        min_labelled=settings.monitor_min_labelled,
        min_frauds=settings.monitor_min_fraud_labels,
    )
    minimums = {
        "precision": settings.monitor_min_precision,
        "recall": settings.monitor_min_recall,
        "roc_auc": settings.monitor_min_roc_auc,
    }
    judged = False
    for metric, value in report.live.values().items():
        if value is None:
            continue
        judged = True
        if value < minimums[metric]:
            report.breaches.append(
                Breach(
                    f"live_{metric}",
                    f"live {metric} {value:.3f} below {minimums[metric]} on "
                    f"{report.live.labelled} labelled predictions ({report.live.frauds} fraud)",
                )
            )
    if not judged:
        report.notes.append(
            f"{report.live.labelled} labelled prediction(s) ({report.live.frauds} fraud): "
            f"not enough to judge live metrics (KAIZEN_MONITOR_MIN_LABELLED="
            f"{settings.monitor_min_labelled}, KAIZEN_MONITOR_MIN_FRAUD_LABELS="
            f"{settings.monitor_min_fraud_labels})"
        )


def save_last_check(store: ObjectStore, report: MonitorReport) -> str:
    """Store ``report`` as the model's last check (``kaizen status`` reads it)."""
    key = LAST_CHECK.format(model=report.model)
    store.put_bytes(key, json.dumps(report.to_dict(), indent=1).encode(), overwrite=True)
    return key


def last_check(store: ObjectStore, model: str) -> dict[str, Any] | None:
    """The model's last stored check, or None when the monitor never ran."""
    from kaizen.platform.storage import KeyNotFoundError

    try:
        data: dict[str, Any] = json.loads(store.get_bytes(LAST_CHECK.format(model=model)))
    except KeyNotFoundError:
        return None
    return data


def log_to_mlflow(settings: Settings, report: MonitorReport) -> str:
    """Log ``report`` as one run of the ``monitoring`` experiment; returns its run id."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name(MLFLOW_EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment is not None
        else client.create_experiment(MLFLOW_EXPERIMENT)
    )
    run = client.create_run(
        experiment_id,
        run_name=f"monitor-{report.model}-v{report.version}",
        tags={
            "kaizen.model": report.model,
            "kaizen.model_version": str(report.version),
            "kaizen.breaches": ",".join(b.check for b in report.breaches) or "none",
        },
    )
    metrics = {"predictions": float(report.predictions)}
    for drift in report.features:
        metrics[f"psi.{drift.name}"] = drift.psi
        if drift.ks_pvalue is not None:
            metrics[f"ks_pvalue.{drift.name}"] = drift.ks_pvalue
    if report.score is not None:
        metrics["psi.score"] = report.score.psi
    if report.live is not None:
        metrics["labelled_predictions"] = float(report.live.labelled)
        for metric, value in report.live.values().items():
            if value is not None:
                metrics[f"live.{metric}"] = value
    for check_name in CHECKS:
        metrics[f"breach.{check_name}"] = float(report.breached(check_name))
    for name, value in metrics.items():
        client.log_metric(run.info.run_id, _mlflow_key(name), value)
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def _mlflow_key(name: str) -> str:
    # MLflow keys take letters, digits, _ - . / and space; feature names may hold more.
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)


class MonitorCollector:
    """The monitor's Prometheus gauges, from the latest report and the retraining records.

    Register it on a ``CollectorRegistry``; it reads :attr:`report` and :attr:`retrainings`
    (``{target: count}``) at every scrape.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.report: MonitorReport | None = None
        self.retrainings: dict[str, int] = {}

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        model = self.model
        report = self.report
        feature_psi = GaugeMetricFamily(
            "kaizen_monitor_feature_psi",
            "PSI of each feature's recent values against the training reference.",
            labels=["model", "feature"],
        )
        ks = GaugeMetricFamily(
            "kaizen_monitor_feature_ks_pvalue",
            "Two-sample KS p-value of each feature against the training reference.",
            labels=["model", "feature"],
        )
        score_psi = GaugeMetricFamily(
            "kaizen_monitor_score_psi",
            "PSI of the recent prediction scores against the validation scores.",
            labels=["model"],
        )
        live = GaugeMetricFamily(
            "kaizen_monitor_live_metric",
            "Live precision, recall and ROC-AUC on labelled predictions.",
            labels=["model", "metric"],
        )
        labelled = GaugeMetricFamily(
            "kaizen_monitor_labelled_predictions",
            "Labelled predictions the live metrics were computed on.",
            labels=["model"],
        )
        breach = GaugeMetricFamily(
            "kaizen_monitor_breach",
            "1 when the check failed at the last run, else 0.",
            labels=["model", "check"],
        )
        last_run = GaugeMetricFamily(
            "kaizen_monitor_last_run_timestamp_seconds",
            "Unix time of the last completed monitoring check.",
            labels=["model"],
        )
        retrainings = CounterMetricFamily(
            "kaizen_monitor_retrainings",
            "Retrainings the monitor started, by target.",
            labels=["model", "target"],
        )
        if report is not None:
            for drift in report.features:
                feature_psi.add_metric([model, drift.name], drift.psi)
                if drift.ks_pvalue is not None:
                    ks.add_metric([model, drift.name], drift.ks_pvalue)
            if report.score is not None:
                score_psi.add_metric([model], report.score.psi)
            if report.live is not None:
                labelled.add_metric([model], report.live.labelled)
                for metric in METRICS:
                    value = report.live.values()[metric]
                    if value is not None:
                        live.add_metric([model, metric], value)
            for check_name in CHECKS:
                breach.add_metric([model, check_name], float(report.breached(check_name)))
            last_run.add_metric([model], datetime.fromisoformat(report.checked_at).timestamp())
        for target, count in sorted(self.retrainings.items()):
            retrainings.add_metric([model, target], count)
        yield from (feature_psi, ks, score_psi, live, labelled, breach, last_run, retrainings)
