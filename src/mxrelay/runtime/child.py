"""The delivery process, composed: `python -m mxrelay.runtime.child FD`, started by the relay.

The relay's `DeliveryProcess` (`delivery/process/supervisor.py`) starts this module with its end
of a socket pair; `delivery/process/child.py` carries the link (the settings in, metrics and
conditions out). Here the process builds what a relay delivering in its own process builds,
from the same pieces (`worker.py`, `transforms.py`): the store opened as the `mxrelay queue`
command does (no migrations, not the SQLite lock, which is its parent's), a group committer of its
own, the smarthost transport and the delivery worker under a lease owner of its own. It imports
nothing of the Graph transport, which smtp mode never uses.
"""

from __future__ import annotations

import socket
import sys

from mxrelay.config import Settings
from mxrelay.delivery.process.child import RelayLink, ReportedHealth, run
from mxrelay.runtime.transforms import ics_policy, store_variants
from mxrelay.runtime.worker import build_worker, group_committer, replica_name, smarthost_transport
from mxrelay.store.open import OpenMode, open_store
from mxrelay.store.queue import Queue

MODULE = "mxrelay.runtime.child"
CHILD_COMMAND = (sys.executable, "-m", MODULE)
"""How the relay starts its delivery process."""


async def deliver(relay: RelayLink, settings: Settings) -> None:
    """Run the delivery worker until the relay says stop (or is gone)."""
    store = settings.store
    metrics = relay.recorder.as_metrics()
    health = ReportedHealth(relay.protocol)
    async with (
        open_store(
            store.database_url,
            OpenMode.DELIVERY,
            synchronous=store.synchronous,
            read_cache=store.sqlite_read_cache,
        ) as db,
        group_committer(db, store, metrics=metrics, health=health) as committer,
    ):
        _, render = store_variants(ics_policy(settings.mime), None)
        transport = smarthost_transport(settings, metrics)
        worker = build_worker(
            settings,
            Queue(db),
            transport,
            committer,
            owner=replica_name(socket.gethostname()),
            metrics=metrics,
            health=health,
            render=render,
        )
        try:
            await relay.run_worker(worker)
        finally:
            await transport.aclose()


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        sys.stderr.write(f"usage: python -m {MODULE} FD (started by mxrelay serve)\n")
        return 2
    return run(int(argv[0]), deliver)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
