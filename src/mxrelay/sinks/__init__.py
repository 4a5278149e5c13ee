"""What happens after DATA: the `Sink` implementations the relay policy hands transactions to.

`queued.py` accepts into the store and queue (the `graph`, `smtp` and `hold` modes) and answers
once the message is committed; `passthrough.py` relays each step to the upstream while the client
waits. The contracts they implement are the SMTP engine's (`smtp/sink.py`).
"""
