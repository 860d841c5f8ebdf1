"""What a failed run records, so that the MLflow UI says why: its tag ``error`` and its
description (`failure_tags`), from the step's error (`failure_message`). MLflow is
imported only to name the tracking server a refusal came from."""

from __future__ import annotations

from pixel_threshold.runs import logins

ERROR_TAG = "error"
"""A failed run's error message (also its description, ``DESCRIPTION_TAG``)."""
DESCRIPTION_TAG = "mlflow.note.content"
"""The tag the MLflow UI shows as a run's description."""


def failure_message(error: Exception) -> str:
    """What a failed run says went wrong: a bad parameter's message as it is (a
    ``ValueError`` names the parameter and its value), a login or permission the tracking
    server refused in words (`logins.refusal`), anything else with its type."""
    import mlflow

    if isinstance(error, ValueError):
        return str(error)
    return logins.refusal(error, mlflow.get_tracking_uri()) or f"{type(error).__name__}: {error}"


def failure_tags(step: str, error: Exception) -> dict[str, str]:
    """A failed run's tags: ``error``'s message as its tag ``error`` and its description
    (``<step> failed: <message>``)."""
    message = failure_message(error)
    return {ERROR_TAG: message, DESCRIPTION_TAG: f"{step} failed: {message}"}
