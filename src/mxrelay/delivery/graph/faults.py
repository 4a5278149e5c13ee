"""The Graph configuration faults in force, and everything that shows them.

A fault (AADSTS errors, 403 ErrorAccessDenied, a missing Mail.Send role, ...) sets its gauge
(`mxrelay_graph_configuration_fault{fault}`), turns the "graph" status condition false (/healthz,
never readiness: the mail is held, not refused) and is logged once in words; a send or a probe that
succeeds clears them all. Which answers are faults is `outcome.py`'s decision; the transport reports
them here.
"""

from __future__ import annotations

import logging

from mxrelay.delivery.graph.outcome import CONFIGURATION_FAULTS, GraphConfigurationFault
from mxrelay.health import ConditionName, Health
from mxrelay.log import event
from mxrelay.metrics import Metrics
from mxrelay.model import GraphFault

logger = logging.getLogger(__name__)


class FaultTracker:
    """The set of faults in force, its gauge, the "graph" condition and the log lines."""

    def __init__(self, metrics: Metrics | None = None, health: Health | None = None) -> None:
        self._metrics = metrics
        self._health = health
        self._faults: set[GraphFault] = set()

    @property
    def active(self) -> frozenset[GraphFault]:
        return frozenset(self._faults)

    def record(self, fault: GraphConfigurationFault) -> None:
        """A fault was seen: gauge and condition at once, a log line the first time."""
        first = fault.fault not in self._faults
        self._faults.add(fault.fault)
        if self._metrics is not None:
            self._metrics.graph_configuration_fault.labels(fault=fault.fault).set(1)
        if self._health is not None:
            self._health.set(ConditionName.GRAPH, False, f"Graph: {fault.detail}")
        if first:
            event(
                logger,
                "graph_configuration_fault",
                logging.ERROR,
                fault=fault.fault.value,
                detail=fault.detail,
                error_code=fault.error_code,
                request_id=fault.remote_id,
            )

    def recovered(self) -> None:
        """Graph delivery works: every fault is cleared (logged if there were any)."""
        if self._faults:
            event(logger, "graph_configuration_fault_cleared", faults=sorted(self._faults))
            self._faults.clear()
        if self._metrics is not None:
            for fault in CONFIGURATION_FAULTS:
                self._metrics.graph_configuration_fault.labels(fault=fault).set(0)
        if self._health is not None:
            self._health.set(ConditionName.GRAPH, True)
