"""Hearing back from the mail world: bounces (RFC 3464 DSN and non-standard),
complaints (RFC 5965 ARF, provider webhooks), auto-replies and delays.

One pipeline serves every intake (``kabarfeed bounces ingest`` on stdin, a
polled Maildir, a polled IMAP mailbox, HTTP webhooks)::

    bytes ─► parse (Report) ─► attribute (VERP token, Message-ID, List- headers)
          ─► record (mail_events, idempotent) ─► policy (bounced / unsubscribed
             + suppression list), all in one transaction.
"""
