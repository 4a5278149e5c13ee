"""The relay as an SMTP client, shared by passthrough and the smarthost transport.

`pool.py` opens, reuses and closes connections to the upstream server. What is sent on them, and
what the replies mean for a client waiting at the SMTP side or for a queued delivery, is the
callers' (`sinks/passthrough.py`, `delivery/smarthost/`).
"""
