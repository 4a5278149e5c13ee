"""Retention: bodies go first (age and total size), metadata and delivery history later (age).

Tiered as an audit log needs it (see the message-log notes): a body is dropped after
`MXRELAY_STORE_BODY_RETENTION` or, oldest first, when bodies together exceed
`MXRELAY_STORE_BODY_MAX_SIZE`; the message's envelope, recipients, attempts and its full-text row
(minus the body text) stay until `MXRELAY_STORE_LOG_RETENTION`; refusals follow the same age. The
audit log (who acted on the log through the API) has its own, longer age,
`MXRELAY_STORE_AUDIT_RETENTION`.
Nothing that is still queued (queued, active, deferred, held) is ever pruned.

`Pruner.run_once()` works in bounded batches, each its own short transaction, so the SMTP side's
commits interleave with it, and it repeats batches until the backlog is gone or its budget of batches
per run is spent; at `prune_batch_limit` rows per batch it clears thousands of messages per second,
well above what the relay accepts. Mailpit's fixed 5,000-per-minute pruning is what this avoids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from mxrelay.config import StoreSettings
from mxrelay.log import event
from mxrelay.metrics import Metrics, PruneKind
from mxrelay.store.backend import Database

logger = logging.getLogger(__name__)

MAX_BATCHES_PER_RUN = 200

_MESSAGE_DELETES = (
    "search_delete",
    "prune_body",
    "prune_message_variants",
    "prune_message_recipients",
    "prune_message_queue",
    "prune_message_attempts",
    "prune_message_tags",
    "prune_message_fields",
    "prune_message",
)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    body_age: float
    """Seconds a body is kept."""
    body_max_size: int
    """Bytes of stored (compressed) bodies kept at most; 0 = no cap."""
    log_age: float
    """Seconds message metadata, attempts and refusals are kept."""
    batch: int = 1000
    audit_age: float = 730 * 86400.0
    """Seconds audit log entries are kept."""

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> RetentionPolicy:
        return cls(
            body_age=settings.body_retention.total_seconds(),
            body_max_size=settings.body_max_size,
            log_age=settings.log_retention.total_seconds(),
            batch=settings.prune_batch_limit,
            audit_age=settings.audit_retention.total_seconds(),
        )


@dataclass(slots=True)
class PruneReport:
    bodies: int = 0
    messages: int = 0
    refusals: int = 0
    audit: int = 0
    body_bytes: int = 0
    """Stored body bytes after the run."""
    oldest_body_at: float | None = None
    complete: bool = True
    """False when the batch budget ran out with work left (the next run continues)."""
    batches: int = field(default=0, repr=False)


def _search_params(message_id: str, now: float) -> dict[str, object]:
    return {"message_id": message_id, "match": f'message_id:"{message_id}"', "now": now}


class Pruner:
    def __init__(
        self,
        db: Database,
        policy: RetentionPolicy,
        *,
        metrics: Metrics | None = None,
        max_batches: int = MAX_BATCHES_PER_RUN,
    ) -> None:
        self.db = db
        self.policy = policy
        self.metrics = metrics
        self.max_batches = max_batches
        self._sql = db.statements

    async def run_once(self, now: float) -> PruneReport:
        report = PruneReport()
        await self._prune_bodies_by_age(now, report)
        await self._prune_bodies_by_size(now, report)
        await self._prune_messages(now, report)
        await self._prune_refusals(now, report)
        await self._prune_audit(now, report)
        total, oldest = await self.db.read(self._one, "body_totals")
        report.body_bytes = int(total or 0)
        report.oldest_body_at = None if oldest is None else float(oldest)
        self._observe(report, now)
        return report

    def _budget(self, report: PruneReport) -> bool:
        if report.batches >= self.max_batches:
            report.complete = False
            return False
        report.batches += 1
        return True

    def _one(self, conn: Connection, name: str) -> tuple[Any, ...]:
        return tuple(conn.execute(self._sql[name]).one())

    def _rows(self, conn: Connection, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in conn.execute(self._sql[name], params)]

    def _deleted(self, conn: Connection, name: str, params: dict[str, Any]) -> int:
        return int(getattr(conn.execute(self._sql[name], params), "rowcount", 0) or 0)

    def _run_all(self, conn: Connection, names: tuple[str, ...], rows: list[Any]) -> None:
        for name in names:
            conn.execute(self._sql[name], rows)

    async def _candidates(self, query: str, cutoff: float) -> list[tuple[Any, ...]]:
        params = {"cutoff": cutoff, "limit": self.policy.batch}
        return await self.db.read(self._rows, query, params)

    async def _drop_bodies(self, ids: list[str], now: float) -> None:
        rows = [_search_params(message_id, now) for message_id in ids]
        names = ("prune_body", "mark_body_pruned", "search_clear_body")
        await self.db.write(self._run_all, names, rows)

    async def _prune_bodies_by_age(self, now: float, report: PruneReport) -> None:
        cutoff = now - self.policy.body_age
        while self._budget(report):
            rows = await self._candidates("prunable_bodies", cutoff)
            if rows:
                await self._drop_bodies([str(r[0]) for r in rows], now)
                report.bodies += len(rows)
            if len(rows) < self.policy.batch:
                return

    async def _prune_bodies_by_size(self, now: float, report: PruneReport) -> None:
        cap = self.policy.body_max_size
        if cap <= 0:
            return
        total = int((await self.db.read(self._one, "body_totals"))[0] or 0)
        while total > cap and self._budget(report):
            rows = await self._candidates("prunable_bodies", now + 1.0)
            chosen: list[str] = []
            for message_id, size in rows:
                if total <= cap:
                    break
                chosen.append(str(message_id))
                total -= int(size)
            if not chosen:
                return  # what remains is still queued
            await self._drop_bodies(chosen, now)
            report.bodies += len(chosen)

    async def _prune_messages(self, now: float, report: PruneReport) -> None:
        cutoff = now - self.policy.log_age
        while self._budget(report):
            rows = await self._candidates("prunable_messages", cutoff)
            if rows:
                params = [_search_params(str(r[0]), now) for r in rows]
                await self.db.write(self._run_all, _MESSAGE_DELETES, params)
                report.messages += len(rows)
            if len(rows) < self.policy.batch:
                return

    async def _prune_refusals(self, now: float, report: PruneReport) -> None:
        report.refusals += await self._prune_by_age(
            "prune_refusals", now - self.policy.log_age, report
        )

    async def _prune_audit(self, now: float, report: PruneReport) -> None:
        report.audit += await self._prune_by_age("prune_audit", now - self.policy.audit_age, report)

    async def _prune_by_age(self, query: str, cutoff: float, report: PruneReport) -> int:
        """Rows older than `cutoff` deleted by `query` in batches; how many."""
        total = 0
        while self._budget(report):
            params = {"cutoff": cutoff, "limit": self.policy.batch}
            deleted = await self.db.write(self._deleted, query, params)
            total += deleted
            if deleted < self.policy.batch:
                break
        return total

    def _observe(self, report: PruneReport, now: float) -> None:
        if self.metrics is not None:
            self.metrics.store_pruned.labels(kind=PruneKind.BODIES).inc(report.bodies)
            self.metrics.store_pruned.labels(kind=PruneKind.MESSAGES).inc(report.messages)
            self.metrics.store_pruned.labels(kind=PruneKind.REFUSALS).inc(report.refusals)
            self.metrics.store_pruned.labels(kind=PruneKind.AUDIT).inc(report.audit)
            self.metrics.store_body_bytes.set(report.body_bytes)
            age = 0.0 if report.oldest_body_at is None else max(now - report.oldest_body_at, 0.0)
            self.metrics.store_oldest_body_age.set(age)
        pruned = report.bodies or report.messages or report.refusals or report.audit
        if pruned or not report.complete:
            event(
                logger,
                "store.pruned",
                bodies=report.bodies,
                messages=report.messages,
                refusals=report.refusals,
                audit=report.audit,
                body_bytes=report.body_bytes,
                complete=report.complete,
            )
