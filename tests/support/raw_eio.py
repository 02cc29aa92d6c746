"""Engine.IO v4 long-polling by hand, to see the exact packets the server writes."""

from __future__ import annotations

import json

import urllib3

RECORD_SEPARATOR = "\x1e"


class Polling:
    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        self.base = f"{base_url}/socket.io/?EIO=4&transport=polling"
        self.headers = headers or {}
        response = urllib3.request("GET", self.base, headers=self.headers, timeout=5)
        assert response.status == 200, response.data
        body = response.data.decode()
        assert body[0] == "0", body
        self.handshake = json.loads(body[1:])
        self.sid = self.handshake["sid"]

    def post(self, *packets: str) -> int:
        response = urllib3.request(
            "POST",
            f"{self.base}&sid={self.sid}",
            body=RECORD_SEPARATOR.join(packets).encode(),
            headers={**self.headers, "Content-Type": "text/plain;charset=UTF-8"},
            timeout=5,
        )
        return response.status

    def get(self, timeout: float = 30) -> list[str]:
        response = urllib3.request(
            "GET", f"{self.base}&sid={self.sid}", headers=self.headers, timeout=timeout
        )
        assert response.status == 200, response.data
        return response.data.decode().split(RECORD_SEPARATOR)
