"""A stand-in for Zou's API in the unit tests, saying so: a tiny HTTP server on a loopback
port answering each path with the status and JSON body the test scripts.

The real Zou API (tests/support/zou_stack.py) takes about a minute to build, and cannot be
made to answer 500 or a 422 on demand; the unit tests of zou_api.py and authenticator.py
need exactly those answers, in seconds. The bodies only have the fields zou-events reads,
in the shape of Zou 1.0.97's (pinned against the real one by tests/compat/test_zou_stack.py).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

AUTHENTICATED = "/auth/authenticated"  # who a token's person is


def account(active: bool = True, preview_project_id: str | None = None) -> dict[str, Any]:
    """``GET /auth/authenticated``'s body for a person."""
    user = {"active": active, "role": "user", "preview_project_id": preview_project_id}
    return {"authenticated": True, "user": {**user, "is_bot": False}}


class ScriptedZou:
    """``answers`` maps a path prefix to (status, JSON body); unlisted paths answer 404."""

    def __init__(self, answers: dict[str, tuple[int, Any]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.requests: Counter[str] = Counter()  # paths asked
        self.tokens: list[str] = []  # the Authorization headers received, in order
        counting = threading.Lock()  # requests are served on threads: `+=` alone loses counts
        scripted = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with counting:
                    scripted.requests[self.path] += 1
                    scripted.tokens.append(self.headers.get("Authorization", ""))
                status, body = scripted.answer(self.path)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: object) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def answer(self, path: str) -> tuple[int, Any]:
        for prefix, answer in self.answers.items():
            if path.startswith(prefix):
                return answer
        return 404, {"message": "not found"}

    def asked(self, prefix: str) -> int:
        return sum(count for path, count in self.requests.items() if path.startswith(prefix))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def __enter__(self) -> ScriptedZou:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
