"""Step: record how the run ended (a log line, and a webhook POST when configured)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kaizen.steps._io import tracker

if TYPE_CHECKING:
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
    """Record how the run ended: a log line, and a webhook POST when configured.

    The message says whether the gate passed (and in which round) or, when every round
    failed, the best metrics reached, read from the gate outcomes recorded under ``run_id``.
    """
    from kaizen.evaluation.outcomes import gate_outcomes, outcome_message
    from kaizen.platform.notify import Notification, notify
    from kaizen.platform.storage import open_store

    rounds = gate_outcomes(open_store(settings), run_id) if run_id else []
    message = outcome_message(state, error_message, rounds)
    parent = tracker(run_id, settings)
    if parent is not None:
        succeeded = state.upper() in {"SUCCEEDED", "SUCCESS"}
        parent.finish("FINISHED" if succeeded else "FAILED")
    record = notify(
        Notification(
            pipeline=pipeline,
            run=run_id or run,
            state=state,
            message=message,
            details={"gate_rounds": rounds},
        ),
        webhook_url or None,
    )
    return record.to_dict()
