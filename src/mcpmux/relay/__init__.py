"""Who gets what: client sessions, the per-server and merged routes, fan-out, subscriptions, tool search."""
