"""OAuth 2.1: mcpmux as a resource server for its clients (front) and as a client of its upstreams (back)."""
