"""mcpmux: many MCP servers behind one fast, full-fidelity HTTP proxy."""

__version__ = "0.1.0"

__all__ = ["__version__"]
