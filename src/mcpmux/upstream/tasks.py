"""Cancelled tasks must not keep what they referenced alive: anyio holds a cancelled task's exception
in a reference cycle until the cycle collector runs, and its traceback holds the task's frames."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


def release_frames(exc: BaseException) -> None:
    """Clear the locals of the finished frames below the current one in `exc`'s traceback."""
    tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
    while tb is not None:
        try:
            tb.tb_frame.clear()
        except RuntimeError:  # still executing (cannot happen below a frame that caught it)
            pass
        tb = tb.tb_next


async def released(fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
    """`await fn(*args)` as a task whose frames let go of their locals when it is cancelled or fails."""
    try:
        await fn(*args)
    except BaseException as exc:
        release_frames(exc)
        del fn, args
        raise
