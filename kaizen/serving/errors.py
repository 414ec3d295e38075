"""Serving errors that map to HTTP statuses beyond KServe's own (400/404/503/500)."""

from __future__ import annotations


class RequestTimeoutError(Exception):
    """A request did not finish within the server's per-request budget (HTTP 504).

    Args:
        seconds: The budget that was exceeded.
        stage: What was running when it ran out (``"feature lookup"``, ``"scoring"``).
    """

    def __init__(self, seconds: float, stage: str) -> None:
        super().__init__(f"request timed out after {seconds:g} s during {stage}")
        self.seconds = seconds
        self.stage = stage


class PredictionFailedError(Exception):
    """A model produced no usable answer (an exception, or a non-finite score) (HTTP 500).

    The message is safe to show to a client: it names the model version, never a stack trace.
    """
