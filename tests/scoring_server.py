"""A scoring server that answers as MLflow's does (``POST /invocations`` with
``{"inputs": ...}`` -> ``{"predictions": ...}``), for a model's ``predict``, in a thread
of the test: it can ask for a bearer token, and fail with 500s after some requests."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

import numpy as np

from tests.local_http import serving


@dataclass
class Scoring:
    """What the server does and saw: ``predict`` on each request's inputs, the token
    it wants (None: any), the request after which it answers 500, the rows it scored
    and the Authorization headers it got."""

    predict: Callable[[np.ndarray], Any]
    token: str | None = None
    fail_after: int | None = None
    requests: int = 0
    rows: list[int] = field(default_factory=list)
    authorizations: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def scoring_server(scoring: Scoring) -> Iterator[str]:
    """Serve ``scoring`` on a free local port for the block; yield its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            authorization = self.headers.get("Authorization", "")
            with scoring.lock:
                scoring.requests += 1
                failing = scoring.fail_after is not None and scoring.requests > scoring.fail_after
                scoring.authorizations.add(authorization)
            if scoring.token is not None and authorization != f"Bearer {scoring.token}":
                return self._answer(403, {"error": "forbidden"})
            if failing:
                return self._answer(500, {"error": "the model crashed"})
            inputs = np.asarray(json.loads(body)["inputs"], dtype=np.float32)
            with scoring.lock:
                scoring.rows.append(len(inputs))
            self._answer(200, {"predictions": np.asarray(scoring.predict(inputs)).tolist()})

        def _answer(self, code: int, document: dict[str, Any]) -> None:
            data = json.dumps(document).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as url:
        yield url
