"""Step: record how the run ended (a log line, and every configured notification channel)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kaizen.steps._io import tracker

if TYPE_CHECKING:
    from kaizen.platform.notify import Event
    from kaizen.platform.settings import Settings


def notify_step(
    pipeline: str,
    run: str,
    state: str,
    *,
    settings: Settings,
    error_message: str = "",
    webhook_url: str = "",
    run_id: str = "",
) -> dict[str, Any]:
    """Record how the run ended: a log line, then the webhook, Slack and email if configured.

    The message says whether the gate passed (and in which round) or, when every round
    failed, the best metrics reached, read from the gate outcomes recorded under ``run_id``.
    The event is ``run_failed``, ``gate_failed`` (every round failed; the best round's
    metrics are in the details), ``model_registered`` (a round passed, so the register task
    ran) or ``run_succeeded`` (no gate round recorded).

    Returns:
        The generic webhook's delivery record (as before), with ``channels``: every
        channel's record, that one first.
    """
    from kaizen.evaluation.outcomes import gate_outcomes, outcome_message
    from kaizen.platform.notify import Notification, deliver
    from kaizen.platform.storage import open_store

    rounds = gate_outcomes(open_store(settings), run_id) if run_id else []
    message = outcome_message(state, error_message, rounds)
    parent = tracker(run_id, settings)
    succeeded = state.upper() in {"SUCCEEDED", "SUCCESS"}
    if parent is not None:
        parent.finish("FINISHED" if succeeded else "FAILED")
    event, details = _event(succeeded, rounds)
    records = deliver(
        Notification(
            pipeline=pipeline,
            run=run_id or run,
            state=state,
            message=message,
            details=details,
            event=event,
        ),
        settings,
        webhook_url=webhook_url or None,
    )
    return {**records[0].to_dict(), "channels": [record.to_dict() for record in records]}


def _event(succeeded: bool, rounds: list[dict[str, Any]]) -> tuple[Event, dict[str, Any]]:
    """The event a run's end is, and the details that go with it."""
    from kaizen.platform.notify import Event

    details: dict[str, Any] = {"gate_rounds": rounds}
    if not succeeded:
        return Event.RUN_FAILED, details
    if not rounds:
        return Event.RUN_SUCCEEDED, details
    passed = [record for record in rounds if record["passed"]]
    if passed:
        details["registered_from_round"] = passed[0]["round"]
        details["metrics"] = passed[0]["metrics"]
        return Event.MODEL_REGISTERED, details

    def roc_auc(record: dict[str, Any]) -> float:
        value = record["metrics"].get("roc_auc")
        return float(value) if isinstance(value, int | float) else float("-inf")

    best = max(rounds, key=roc_auc)
    details["best_round"] = best["round"]
    details["best_metrics"] = best["metrics"]
    failing = [reason for reason in best["reasons"] if reason.endswith("fail")]
    details["failing_checks"] = "; ".join(failing) or "none recorded"
    return Event.GATE_FAILED, details
