"""A model behind a scoring server: MLflow's (``mlflow models serve``: ``POST
/invocations`` with ``{"inputs": ...}``, answering ``{"predictions": ...}``).

A call's rows go out as up to ``IN_FLIGHT`` requests at once; a request that times out,
cannot connect or gets a 5xx answer is tried again (``RETRIES`` times, waiting longer
each time) and then fails the call: no score comes from a request that failed, so the
attack never counts queries the model did not answer. A bearer token comes from the
environment (`TOKEN_VARIABLE`), never from a parameter, so it reaches no logged
parameter, tag or artifact.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

from pixel_threshold.models.conventions import InputConventions
from pixel_threshold.models.scoring import Forward

TOKEN_VARIABLE = "PIXEL_THRESHOLD_MODEL_TOKEN"
IN_FLIGHT = 4
RETRIES = 3
TIMEOUT_SECONDS = 60.0
BACKOFF_SECONDS = 0.5


class Endpoint:
    """POSTs batches to ``url`` and returns the predictions, (rows, K)."""

    def __init__(
        self,
        url: str,
        *,
        rows_per_request: int,
        retries: int = RETRIES,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self.url = url
        self.rows_per_request = rows_per_request
        self.retries = retries
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(IN_FLIGHT)
        self._headers = {"Content-Type": "application/json"}
        token = os.environ.get(TOKEN_VARIABLE)
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def __call__(self, inputs: npt.NDArray[Any]) -> npt.NDArray[Any]:
        chunks = [
            inputs[start : start + self.rows_per_request]
            for start in range(0, len(inputs), self.rows_per_request)
        ]
        return np.concatenate(list(self._pool.map(self._post, chunks)))

    def _post(self, chunk: npt.NDArray[Any]) -> npt.NDArray[Any]:
        body = json.dumps({"inputs": chunk.tolist()}).encode()
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, body, self._headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    return _predictions(json.loads(answer.read()), self.url)
            except urllib.error.HTTPError as error:
                if error.code < 500 or attempt == self.retries:
                    raise ValueError(self._failed(f"HTTP {error.code} {_text(error)}")) from error
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if attempt == self.retries:
                    reason = getattr(error, "reason", error)
                    raise ValueError(self._failed(str(reason))) from error
            time.sleep(BACKOFF_SECONDS * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _failed(self, reason: str) -> str:
        return (
            f"the model at model={self.url!r} did not answer a request of "
            f"{self.rows_per_request} rows after {self.retries + 1} tries: {reason}"
        )


def _text(error: urllib.error.HTTPError) -> str:
    try:
        return error.read().decode(errors="replace").strip()[:300]
    except OSError:
        return ""


def _predictions(answer: Any, url: str) -> npt.NDArray[Any]:
    predictions = answer.get("predictions") if isinstance(answer, dict) else answer
    if predictions is None:
        raise ValueError(
            f"expected {{'predictions': ...}} from model={url!r}, got {str(answer)[:200]}"
        )
    return np.asarray(predictions)


def scoring_url(url: str) -> str:
    """``url`` with ``/invocations`` where it has no path; raises ValueError for a URL
    that holds credentials (put a token in `TOKEN_VARIABLE` instead)."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        raise ValueError(
            "expected model to be a URL without credentials, got one with a user or password: "
            f"put a bearer token in the {TOKEN_VARIABLE} environment variable instead"
        )
    path = parts.path if parts.path not in ("", "/") else "/invocations"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def load(url: str, conventions: InputConventions, *, batch_size: int) -> Forward:
    """The endpoint at ``url``; it says nothing of its input, so the layout is NHWC
    unless given."""
    fitted = conventions.resolved("NHWC")
    endpoint = Endpoint(scoring_url(url), rows_per_request=max(1, -(-batch_size // IN_FLIGHT)))
    return Forward(endpoint, kind="http", conventions=fitted, batch_size=batch_size)
