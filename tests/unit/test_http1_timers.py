"""The HTTP server's timeouts against a clock the test moves: which one fires, when, and what it sends."""

from __future__ import annotations

from typing import Any

from mcpmux.config.model import HttpLimits
from mcpmux.web.http1 import Connection
from mcpmux.web.http1_timers import check_timers
from mcpmux.web.server import LogBudget

LIMITS = HttpLimits(
    head_timeout_seconds=1.0,
    body_timeout_seconds=1.0,
    write_timeout_seconds=1.0,
    keep_alive_timeout_seconds=5.0,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def time(self) -> float:
        return self.now


class Transport:
    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = self.aborted = self.eof = False

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 5555)

    def write(self, data: bytes) -> None:
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.aborted = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Server:
    """What a Connection needs of web/server.py's Http1Server; requests are recorded, not run."""

    def __init__(self) -> None:
        self.limits = LIMITS
        self.loop = Clock()
        self.connections: set[Connection] = set()
        self.lingering: set[Connection] = set()
        self.closing = False
        self.started: list[Any] = []
        self.log_budget = LogBudget()

    def admit(self, conn: Connection) -> bool:
        self.connections.add(conn)
        return True

    def linger(self, conn: Connection) -> bool:
        self.connections.discard(conn)
        self.lingering.add(conn)
        return True

    def run(self, exchange: Any) -> None:
        self.started.append(exchange)


def connection() -> tuple[Connection, Server, Transport]:
    server, transport = Server(), Transport()
    conn = Connection(server)  # type: ignore[arg-type]
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, server, transport


def tick(conn: Connection, server: Server, seconds: float) -> None:
    server.loop.now += seconds
    check_timers(conn, server.loop.now)


def test_a_body_that_keeps_coming_is_never_timed_out_however_long_it_takes() -> None:
    conn, server, transport = connection()
    conn.data_received(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\n")
    for byte in b"abcdefg":  # 7 x 0.9 s: far longer than the timeout, each gap within it
        tick(conn, server, 0.9)
        conn.data_received(bytes([byte]))
    tick(conn, server, 0.9)
    assert transport.written == b""
    tick(conn, server, 0.2)  # now 1.1 s without a byte
    assert transport.written.startswith(b"HTTP/1.1 408 ")
    assert b"body" in transport.written
    assert transport.eof  # then closed (our side at once, lingering for what the client still sends)


def test_a_head_is_timed_out_from_its_first_byte_even_when_bytes_keep_coming() -> None:
    conn, server, transport = connection()
    conn.data_received(b"GET / HTTP/1.1\r\n")
    for _ in range(3):
        tick(conn, server, 0.3)
        conn.data_received(b"X: y\r\n")
    assert transport.written == b""
    tick(conn, server, 0.2)  # 1.1 s since the head began
    assert transport.written.startswith(b"HTTP/1.1 408 ")
    assert b"head" in transport.written


def test_an_idle_connection_closes_silently_after_the_keep_alive_timeout() -> None:
    conn, server, transport = connection()
    tick(conn, server, 4.9)
    assert not transport.closed
    tick(conn, server, 0.2)
    assert transport.closed
    assert transport.written == b""


def test_a_client_that_reads_nothing_is_aborted_after_the_write_timeout() -> None:
    conn, server, transport = connection()
    conn.pause_writing()
    tick(conn, server, 0.9)
    assert not transport.aborted
    conn.resume_writing()  # it read something: the clock starts again
    conn.pause_writing()
    tick(conn, server, 0.9)
    assert not transport.aborted
    tick(conn, server, 0.2)
    assert transport.aborted


def test_no_timeout_counts_while_the_proxy_itself_holds_reading_back() -> None:
    conn, server, transport = connection()
    conn.data_received(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 8\r\n\r\nab")
    conn.pause_reading()  # e.g. the app has not read the body so far
    tick(conn, server, 30.0)
    assert transport.written == b""
    conn.resume_reading()
    tick(conn, server, 0.9)
    assert transport.written == b""
    tick(conn, server, 0.2)
    assert transport.written.startswith(b"HTTP/1.1 408 ")


def test_refusal_log_lines_are_bounded_per_second_and_the_rest_counted(caplog: Any) -> None:
    budget = LogBudget(per_second=3)
    allowed = [budget.allow(10.0 + i / 100) for i in range(10)]
    assert allowed == [True] * 3 + [False] * 7
    with caplog.at_level("WARNING", logger="mcpmux.http"):
        budget.roll(11.5)
    assert "7 more" in caplog.text
    assert budget.allow(11.6)
