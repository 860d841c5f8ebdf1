"""A proxy in front of an MLflow server that cuts off its answers to chosen paths, as a
server killed while it answers does: the headers promise the whole answer, half of it
comes, and the connection closes; or, the request done, nothing comes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import requests

from tests.local_http import serving

DROPPED_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}
"""Request headers the proxy sets itself (or, for the answer, that no longer hold once
requests has decoded it)."""


@dataclass
class Cuts:
    """Which answers to cut: those to a path holding ``path``, the first ``times`` of
    them after the first ``passed``, half-way or (``withheld``) before their first byte;
    ``made`` lists the paths cut so far."""

    path: str
    times: int
    withheld: bool = False
    passed: int = 0
    made: list[str] = field(default_factory=list)
    seen: int = 0

    def cuts(self, path: str) -> bool:
        """Whether to cut the answer to a request for ``path``."""
        if self.path not in path:
            return False
        self.seen += 1
        return self.seen > self.passed and len(self.made) < self.times


@contextmanager
def cutting_proxy(upstream: str, cuts: Cuts) -> Iterator[str]:
    """A proxy of ``upstream`` on 127.0.0.1 that cuts the answers ``cuts`` names; yields
    its URL."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {
                name: value
                for name, value in self.headers.items()
                if name.lower() not in DROPPED_HEADERS
            }
            answer = requests.request(
                self.command, upstream + self.path, headers=headers, data=body, timeout=60
            )
            content = answer.content
            cut = cuts.cuts(self.path)
            if cut and cuts.withheld:
                cuts.made.append(self.path)
                self.close_connection = True
                return
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in DROPPED_HEADERS | {"content-encoding"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            if cut and content:
                cuts.made.append(self.path)
                self.wfile.write(content[: len(content) // 2])
                self.close_connection = True
                return
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test reads `Cuts.made`."""

    with serving(Handler) as url:
        yield url
