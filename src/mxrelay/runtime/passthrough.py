"""Passthrough mode as a stage: the upstream pool and the sink that relays on it.

Each transaction goes to `MXRELAY_UPSTREAM` while the client waits (`sinks/passthrough.py`), split
first by the ICS policy when one is set (`transforms.py`), on connections the pool keeps open
between transactions (`upstream/pool.py`). Nothing is stored. Closing the stage closes the
pool's idle connections; the SMTP listener has drained by then.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mxrelay.config import Settings
from mxrelay.metrics import Metrics
from mxrelay.mime.pipeline import IcsPolicy
from mxrelay.runtime.transforms import passthrough_variants
from mxrelay.sinks.passthrough import PassthroughSink
from mxrelay.upstream.pool import UpstreamPool


class PassthroughStage:
    """The pool and the sink of passthrough mode; `await aclose()` when the listener is gone."""

    def __init__(
        self,
        settings: Settings,
        *,
        transform: IcsPolicy | None,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        hostname = settings.service.hostname
        self.pool = UpstreamPool(
            settings.upstream, local_hostname=hostname, metrics=metrics, clock=clock
        )
        self.sink = PassthroughSink(
            self.pool,
            hostname=hostname,
            metrics=metrics,
            plan=passthrough_variants(transform, metrics),
            clock=clock,
        )

    async def aclose(self) -> None:
        await self.pool.aclose()
