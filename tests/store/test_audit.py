"""The audit log on SQLite and PostgreSQL: entries stored as given (long texts cut to their
columns), read newest first in pages with the total, filtered, and pruned by their own age."""

from __future__ import annotations

from mxrelay.metrics import Metrics
from mxrelay.store.audit import (
    TARGET_LENGTH,
    AuditEntry,
    AuditFilter,
    list_audit,
    record_audit,
)
from mxrelay.store.backend import Database
from mxrelay.store.retention import Pruner, RetentionPolicy

DAY = 86400.0
NOW = 1_800_000_000.0


def entry(at: float, actor: str = "alice", action: str = "delete", **fields: object) -> AuditEntry:
    return AuditEntry(at=at, actor=actor, client="192.0.2.7", action=action, **fields)  # type: ignore[arg-type]


async def test_entries_come_back_newest_first_in_pages(db: Database) -> None:
    for minute in range(5):
        await record_audit(db, entry(NOW + 60 * minute, target=f"m{minute}", count=minute))
    page = await list_audit(db, 0, 2)
    assert page.total == 5
    assert [r.entry.target for r in page.records] == ["m4", "m3"]
    assert page.records[0].entry == entry(NOW + 240, target="m4", count=4)
    later = await list_audit(db, 4, 2)
    assert [r.entry.target for r in later.records] == ["m0"]
    assert later.total == 5
    assert len({r.id for r in (await list_audit(db, 0, 10)).records}) == 5


async def test_filters_by_actor_action_outcome_and_time(db: Database) -> None:
    await record_audit(db, entry(NOW, actor="alice", action="delete"))
    await record_audit(db, entry(NOW + 10, actor="bob", action="release", outcome="refused"))
    await record_audit(db, entry(NOW + 20, actor="bob", action="delete", outcome="denied"))

    async def actions(filters: AuditFilter) -> list[tuple[str, str]]:
        page = await list_audit(db, 0, 10, filters)
        assert page.total == len(page.records)
        return [(r.entry.actor, r.entry.action) for r in page.records]

    assert await actions(AuditFilter(actor="bob")) == [("bob", "delete"), ("bob", "release")]
    assert await actions(AuditFilter(action="delete")) == [("bob", "delete"), ("alice", "delete")]
    assert await actions(AuditFilter(outcome="refused")) == [("bob", "release")]
    assert await actions(AuditFilter(since=NOW + 10, until=NOW + 20)) == [("bob", "release")]
    assert await actions(AuditFilter(actor="nobody")) == []


async def test_long_texts_are_cut_to_their_columns(db: Database) -> None:
    ids = ",".join(f"01J{n:023d}" for n in range(500))
    await record_audit(db, entry(NOW, actor="u" * 400, action="a" * 300, target=ids))
    [stored] = (await list_audit(db, 0, 1)).records
    assert len(stored.entry.target) == TARGET_LENGTH
    assert stored.entry.target.endswith("…")
    assert stored.entry.target.startswith(ids[:100])
    assert len(stored.entry.actor) == 255
    assert len(stored.entry.action) == 255


async def test_retention_prunes_the_audit_log_by_its_own_age(db: Database) -> None:
    await record_audit(db, entry(NOW - 800 * DAY, target="ancient"))
    await record_audit(db, entry(NOW - 200 * DAY, target="older than the message log"))
    await record_audit(db, entry(NOW - DAY, target="recent"))
    policy = RetentionPolicy(
        body_age=30 * DAY, body_max_size=0, log_age=180 * DAY, batch=1, audit_age=730 * DAY
    )
    metrics = Metrics()
    report = await Pruner(db, policy, metrics=metrics).run_once(NOW)
    assert report.audit == 1
    kept = [r.entry.target for r in (await list_audit(db, 0, 10)).records]
    assert kept == ["recent", "older than the message log"]
    pruned = metrics.registry.get_sample_value("mxrelay_store_pruned_total", {"kind": "audit"})
    assert pruned == 1


async def test_text_no_database_stores_is_kept_with_replacement_characters(db: Database) -> None:
    """A NUL in a request's target (`DELETE /api/v1/search?query=subject:x%00`) must not cost
    the action its entry: PostgreSQL refuses NUL in text."""
    await record_audit(db, entry(NOW, actor="a\x00b", target="query=subject:secret \x00"))
    [stored] = (await list_audit(db, 0, 1)).records
    assert stored.entry.target == "query=subject:secret \ufffd"
    assert stored.entry.actor == "a\ufffdb"
