"""Delivery: the queue's workers, the retry policy, pacing and the transports (Graph, smarthost)."""
