"""Delivery through Microsoft Graph `sendMail`: the transport and what only it needs.

`transport.py` orchestrates one attempt (prepare, token, pace, request, classify); `prepare.py`
builds the bytes and picks the sending mailbox, `client.py` sends the request, `outcome.py` reads
Graph's answer, `faults.py` shows the configuration faults, `auth.py` and `credentials.py` get
tokens through MSAL, `proxy.py` picks the outbound proxy, `pacing.py` and `lanes.py` keep
Exchange's limits (in this process or in the shared store).
"""

from __future__ import annotations

from mxrelay.delivery.graph.transport import GraphTransport

__all__ = ["GraphTransport"]
