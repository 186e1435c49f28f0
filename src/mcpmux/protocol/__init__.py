"""Pure MCP knowledge (no I/O): constants, era classification, era translation, sealed request state."""
