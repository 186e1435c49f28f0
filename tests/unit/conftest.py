"""Fixtures shared by the unit tests."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    """A buffer standing in for stderr; logging is restored afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    buffer = io.StringIO()
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in ("httpx2", "httpx", "httpcore", "mcp"):
        logging.getLogger(name).setLevel(logging.NOTSET)
