"""Pinned tool definitions: the lock file, recording it from live servers, and enforcing it at run time."""
