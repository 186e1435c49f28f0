"""Logging setup: the text and JSON line formats, levels and quieted third-party loggers."""

from __future__ import annotations

import io
import json
import logging
import re

import pytest

from mcpmux.logs import parse_level, setup_logging, utc_timestamp


def test_utc_timestamps_have_milliseconds_and_a_z() -> None:
    assert utc_timestamp(1795466436.123456) == "2026-11-23T20:40:36.123Z"


def test_text_lines_are_timestamp_padded_level_and_the_verbatim_message(stderr: io.StringIO) -> None:
    setup_logging("info", "text", stream=stderr)
    logging.getLogger("mcpmux.upstream").info("<%s> Adding tool %s", "github", "create_issue")
    logging.getLogger("mcpmux").warning("careful")
    lines = stderr.getvalue().splitlines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO  <github> Adding tool create_issue", lines[0]
    )
    assert lines[1].endswith(" WARN  careful")


def test_json_lines_carry_ts_level_logger_msg_and_known_extras(stderr: io.StringIO) -> None:
    setup_logging("debug", "json", stream=stderr)
    extra = {"server": "github", "duration_ms": 12.5, "status": 200, "not_listed": "x"}
    logging.getLogger("mcpmux.web").debug("POST /github/mcp", extra=extra)
    entry = json.loads(stderr.getvalue())
    assert entry.keys() == {"ts", "level", "logger", "msg", "server", "duration_ms", "status"}
    assert (entry["level"], entry["logger"], entry["msg"]) == ("debug", "mcpmux.web", "POST /github/mcp")
    assert (entry["server"], entry["duration_ms"], entry["status"]) == ("github", 12.5, 200)


def test_json_lines_include_the_exception(stderr: io.StringIO) -> None:
    setup_logging("info", "json", stream=stderr)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("mcpmux").exception("failed")
    entry = json.loads(stderr.getvalue())
    assert "RuntimeError: boom" in entry["exception"]


def test_the_level_hides_lower_messages(stderr: io.StringIO) -> None:
    setup_logging("warning", stream=stderr)
    logging.getLogger("mcpmux").info("hidden")
    logging.getLogger("mcpmux").error("shown")
    assert "hidden" not in stderr.getvalue()
    assert "ERROR shown" in stderr.getvalue()


def test_noisy_third_party_loggers_are_quiet_unless_debugging(stderr: io.StringIO) -> None:
    setup_logging("info", stream=stderr)
    logging.getLogger("httpx2").info("HTTP Request: GET ...")
    logging.getLogger("mcp").info("Processing request")
    assert stderr.getvalue() == ""
    setup_logging("debug", stream=stderr)
    logging.getLogger("httpx2").info("HTTP Request: GET ...")
    assert "HTTP Request" in stderr.getvalue()


def test_setting_up_twice_replaces_the_handler(stderr: io.StringIO) -> None:
    setup_logging("info", stream=stderr)
    setup_logging("info", stream=stderr)
    logging.getLogger("mcpmux").info("once")
    assert stderr.getvalue().count("once") == 1


def test_levels_are_case_insensitive_and_unknown_ones_rejected() -> None:
    assert parse_level("WARN") == logging.WARNING
    with pytest.raises(ValueError, match="unknown log level"):
        parse_level("verbose")
    with pytest.raises(ValueError, match="unknown log format"):
        setup_logging("info", "xml")


def test_a_message_cannot_forge_another_text_entry(stderr: io.StringIO) -> None:
    setup_logging("info", "text", stream=stderr)
    forged = "1\n2026-12-03T10:00:00.000Z WARN  <github> forged\r2026-12-03T10:00:01.000Z INFO  x"
    logging.getLogger("mcpmux.access").info("mcp tools/list id=%s ok", forged)
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith(
        "    2026-12-03T10:00:00.000Z WARN"
    )  # indented: not an entry
    assert "\r" not in stderr.getvalue() and "\\r2026" in lines[1]
    assert all(re.match(r"\d{4}-", line) for line in lines[:1])
