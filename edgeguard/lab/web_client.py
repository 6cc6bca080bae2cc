"""An HTTP client for a console, as a browser on the same origin would talk to it: the session
cookie, the CSRF token from /api/me, and an Origin header on every POST. For tests and the demo."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx


class ConsoleClient:
    def __init__(self, base_url: str, *, origin: str | None = None, verify: Any = True) -> None:
        self.base = base_url.rstrip("/")
        self.origin = origin or self.base
        self.http = httpx.Client(base_url=self.base, timeout=10.0, verify=verify)
        self.csrf = ""

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ConsoleClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def login(self, user: str, password: str) -> httpx.Response:
        response = self.http.post(
            "/login", data={"user": user, "password": password}, headers={"Origin": self.origin}
        )
        if response.status_code == 303:
            self.csrf = self.get("/api/me").json()["csrf"]
        return response

    def get(self, path: str, **params: str) -> httpx.Response:
        return self.http.get(path, params=params or None)

    def post(self, path: str, body: dict[str, Any] | None = None, **headers: str) -> httpx.Response:
        sent = {"Origin": self.origin, "X-CSRF-Token": self.csrf, **headers}
        return self.http.post(path, json=body or {}, headers=sent)

    def events(self, path: str = "/api/stream", timeout: float = 10.0) -> Iterator[dict[str, Any]]:
        """The live stream's events as dicts ({"type": ..., ...}) until ``timeout`` passes or
        the server closes the stream."""
        with contextlib.suppress(httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError):
            yield from self._events(path, timeout)

    def _events(self, path: str, timeout: float) -> Iterator[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.http.stream("GET", path, timeout=timeout) as response:
            response.raise_for_status()
            data: list[str] = []
            for line in response.iter_lines():
                if time.monotonic() > deadline:
                    return
                if line.startswith("data: "):
                    data.append(line[6:])
                elif not line and data:
                    yield json.loads("\n".join(data))
                    data = []
