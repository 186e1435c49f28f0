"""Upstream MCP servers: one connector per transport behind one seam, sessions, supervision."""
