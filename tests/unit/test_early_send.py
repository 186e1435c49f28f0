"""The early response path is an explicit capability of `send` (web/asgi.py EarlySend), kept by wrappers."""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from mcpmux.web.asgi import RecordingSend, respond_now, send_bytes
from mcpmux.web.exchange import Exchange


class Server:
    """A send offering respond_now, as mcpmux's HTTP server's exchange does."""

    def __init__(self, can: bool = True) -> None:
        self.can = can
        self.written: list[tuple[int, Any, bytes]] = []
        self.messages: list[MutableMapping[str, Any]] = []

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        self.messages.append(message)

    def respond_now(self, status: int, headers: Any, body: bytes) -> bool:
        if self.can:
            self.written.append((status, headers, body))
        return self.can


async def plain_send(message: MutableMapping[str, Any]) -> None:
    """A plain ASGI server's send: no early path."""


def test_a_send_that_offers_respond_now_writes_at_once_with_the_content_length() -> None:
    server = Server()
    assert respond_now(server, 200, b"{}", [(b"content-type", b"application/json")])
    assert server.written == [
        (200, [(b"content-type", b"application/json"), (b"content-length", b"2")], b"{}")
    ]


def test_a_plain_asgi_send_has_no_early_path() -> None:
    assert not respond_now(plain_send, 200, b"{}", [])


def test_access_logging_keeps_the_early_path_and_records_its_status() -> None:
    server = Server()
    recording = RecordingSend(server)
    assert respond_now(recording, 200, b"{}", [])
    assert recording.status == 200 and len(server.written) == 1


def test_when_the_server_cannot_write_now_the_response_goes_through_send_and_is_recorded() -> None:
    server = Server(can=False)
    recording = RecordingSend(server)
    asyncio.run(send_bytes(recording, 202, b"Accepted", []))
    assert recording.status == 202
    assert [m["type"] for m in server.messages] == ["http.response.start", "http.response.body"]


def test_the_http_servers_exchange_is_an_early_send() -> None:
    assert callable(getattr(Exchange, "respond_now", None))
    assert Exchange.__call__ is Exchange.send
