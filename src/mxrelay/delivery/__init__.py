"""Delivery from the queue: the transport contract, the worker and its schedule, the transports.

`transport.py` (the one-method `Transport` and the job/outcome values) and `errors.py` are the
contract; `worker.py` claims and delivers, `settle.py` and `retry.py` decide what an attempt leaves
behind, `leases.py` keeps the leases and probes after a fault. `graph/` delivers through Microsoft
Graph, `smarthost/` to a smarthost, `process/` runs the worker in a child process. This package
exports what the relay and the command line use.
"""

from __future__ import annotations

from mxrelay.delivery.errors import DeliveryError, UpstreamUnavailable
from mxrelay.delivery.transport import DeliveryJob, Transport

__all__ = ["DeliveryError", "DeliveryJob", "Transport", "UpstreamUnavailable"]
