"""Delivery: the outbox state machine, transports (SMTP pool, Maildir), DKIM and
the engine that sends every queued edition exactly once."""
