"""Pure building blocks every layer may use: naming, filters, auth, access, redaction, backoff, pins, BM25."""
