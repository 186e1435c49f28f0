"""A tiny offline MCP server for the quickstart: the current time and a calculator.

Tools `now(timezone?)` and `add(a, b)`. Runs over stdio: `python3 examples/servers/clock_server.py`
(needs only the `mcp` package; time zones come from the system's tz database).
"""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("clock", version="1.0.0", instructions="Tells the time and adds numbers.")


@server.tool()
def now(timezone: str | None = None) -> str:
    """The current date and time in ISO 8601, in UTC or in an IANA time zone such as Europe/Paris."""
    if timezone is None:
        return datetime.now(UTC).isoformat(timespec="seconds")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ToolError(f"Unknown time zone: {timezone}") from error
    return datetime.now(zone).isoformat(timespec="seconds")


@server.tool()
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


if __name__ == "__main__":
    server.run("stdio")
