"""A tiny offline MCP server for the quickstart: notes kept in memory for the life of the process.

Tools `add_note` and `list_notes`, the resource `notes://all` and the prompt `summarize_notes`.
Runs over stdio: `python3 examples/servers/notes_server.py` (needs only the `mcp` package).
"""

from dataclasses import dataclass

from mcp.server import MCPServer

server = MCPServer("notes", version="1.0.0", instructions="Keeps short notes in memory.")


@dataclass(frozen=True)
class Note:
    title: str
    text: str


notes: list[Note] = []


def render_notes() -> str:
    if not notes:
        return "(no notes yet)"
    return "\n".join(f"{number}. {note.title}: {note.text}" for number, note in enumerate(notes, 1))


@server.tool()
def add_note(title: str, text: str) -> str:
    """Add a note with a short title and its text."""
    notes.append(Note(title, text))
    return f"Added note {len(notes)}: {title}"


@server.tool()
def list_notes() -> str:
    """List every note, numbered in the order they were added."""
    return render_notes()


@server.resource("notes://all", name="all-notes", mime_type="text/plain")
def all_notes() -> str:
    """Every note as plain text."""
    return render_notes()


@server.prompt()
def summarize_notes(style: str = "brief") -> str:
    """Ask the model to summarize the notes in the given style (brief, detailed, bullet points...)."""
    return f"Summarize these notes in a {style} style:\n\n{render_notes()}"


if __name__ == "__main__":
    server.run("stdio")
