"""The limits in time of one HTTP/1.1 connection: write, head, body and keep-alive timeouts."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .http1 import Connection


def check_timers(conn: Connection, now: float) -> None:
    """Enforce the timeouts: write, head, body, keep-alive (each against its own clock)."""
    if _write_timed_out(conn, now) or conn.read_paused or conn.disconnected:
        return  # when we are not reading, the client is not late
    if conn.head_started is not None or conn.reading is not None:
        _check_reading(conn, now)
    elif conn.idle and conn.idle_since is not None:
        if now - conn.idle_since > conn.limits.keep_alive_timeout_seconds:
            conn.close()


def _check_reading(conn: Connection, now: float) -> None:
    """408 for a request whose head, or else whose body, stopped arriving."""
    limits = conn.limits
    if conn.head_started is not None:
        if now - conn.head_started > limits.head_timeout_seconds:
            conn._refuse(408, "Request head timed out")
    elif now - conn.body_since > limits.body_timeout_seconds:
        conn._refuse(408, "Request body timed out")


def _write_timed_out(conn: Connection, now: float) -> bool:
    """Abort (True) when a client has read nothing for the write timeout, also after our close."""
    write_timeout = conn.limits.write_timeout_seconds
    if conn.closed_at is not None:  # closed by us, still flushing to a client that does not read
        if now - conn.closed_at <= write_timeout:
            return False
        if conn.lingering and not conn.transport.get_write_buffer_size():
            conn.transport.abort()  # the refusal went out; the client kept sending
        else:
            conn.abort("it does not read what was sent before the close (writeTimeout)")
        return True
    if conn.write_paused_since is None or now - conn.write_paused_since <= write_timeout:
        return False
    conn.abort(f"it read nothing of its response for {write_timeout:g} s (writeTimeout)")
    return True
