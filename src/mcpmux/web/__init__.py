"""The downstream faces: our HTTP/1.1 server, the ASGI app, streamable HTTP and SSE, operator views."""
