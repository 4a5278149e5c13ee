"""The relay as an SMTP client, shared by passthrough and the smarthost transport.

`pool.py` opens, reuses and closes connections to the upstream server; `replies.py` reads what the
upstream answers (one reading for both callers); `errors.py` maps what the client library raises
into one small exception tree. What is sent, and what a reply means for a client waiting at the
SMTP side or for a queued delivery, is the callers' (`sinks/passthrough.py`, `delivery/smarthost/`).
"""
