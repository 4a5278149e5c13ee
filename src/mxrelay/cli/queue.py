"""`mxrelay queue list|show|retry|hold|release|delete`: the queue of a running relay, from outside.

Works against the relay's database (`MXRELAY_DATABASE_URL`) while the relay runs: it never takes the
SQLite lock and never migrates. Entries are named `MESSAGEID` (its first variant) or
`MESSAGEID.VARIANT`, as `list` prints them; actions take names, or filters with `--all`.
States: queued, active (being delivered; also "delivering"), deferred, held, dead (also "failed"),
delivered. Exit status: 0 done, 1 nothing matched, 2 bad configuration. What clients and servers
wrote (subjects, addresses, replies) is printed with control characters escaped, never raw.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from mxrelay.cli.common import load_or_exit
from mxrelay.config import format_duration, parse_duration
from mxrelay.log import printable
from mxrelay.model import QueueState
from mxrelay.store import message_log
from mxrelay.store.backend import Database, StoreError
from mxrelay.store.open import OpenMode, open_store
from mxrelay.store.queue import QueueEntry
from mxrelay.store.queue.admin import QueueAdmin, QueueFilter, QueueRow

EXIT_NOTHING = 1
ACTIONS = ("retry", "hold", "release", "delete")


def _state(text: str) -> QueueState:
    try:
        return QueueState.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"unknown state {text!r}") from None


def _seconds(text: str) -> float:
    try:
        return parse_duration(text).total_seconds()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m or 2d") from None


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", type=_state, action="append", help="only this state (repeat)")
    parser.add_argument("--sender", help="envelope sender contains this")
    parser.add_argument("--recipient", help="a recipient contains this")
    parser.add_argument("--older-than", type=_seconds, metavar="AGE", help="queued before AGE ago")
    parser.add_argument("--newer-than", type=_seconds, metavar="AGE", help="queued within AGE")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "queue",
        help="list and act on queue entries",
        description="Inspect and act on the delivery queue of a running relay.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="list entries (oldest first)")
    _filters(listing)
    listing.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(handler=run)
    show = actions.add_parser("show", help="a message with its recipients and attempts")
    show.add_argument("id", help="MESSAGEID")
    show.add_argument("--json", action="store_true", help="as one JSON object")
    show.set_defaults(handler=run)
    helps = {
        "retry": "deliver now (a dead entry comes back with a fresh lifetime)",
        "hold": "keep entries from delivery until released",
        "release": "let held entries be delivered",
        "delete": "take entries out of the queue (recorded as dead; the log is kept)",
    }
    for name in ACTIONS:
        action = actions.add_parser(name, help=helps[name])
        action.add_argument("ids", nargs="*", metavar="ID", help="MESSAGEID[.VARIANT]")
        action.add_argument("--all", action="store_true", help="every entry matching the filters")
        _filters(action)
        action.set_defaults(handler=run)


def run(
    args: argparse.Namespace, environ: Mapping[str, str], clock: Callable[[], float] = time.time
) -> int:
    settings = load_or_exit(environ)
    try:
        return asyncio.run(_run(args, settings.store.database_url, clock()))
    except StoreError as exc:
        sys.stderr.write(f"mxrelay: {exc}\n")
        return EXIT_NOTHING


async def _run(args: argparse.Namespace, url: str, now: float) -> int:
    async with open_store(url, OpenMode.QUEUE) as db:
        queue = QueueAdmin(db)
        if args.action == "list":
            return await _list(queue, _filter(args), now, args.limit, as_json=args.json)
        if args.action == "show":
            return await _show(db, args.id, now, as_json=args.json)
        return await _act(queue, args, now)


def _filter(args: argparse.Namespace) -> QueueFilter:
    return QueueFilter(
        states=tuple(args.state or ()),
        sender=args.sender,
        recipient=args.recipient,
        older_than=args.older_than,
        newer_than=args.newer_than,
    )


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _age(now: float, then: float) -> str:
    seconds = max(int(now - then), 0)
    return format_duration(parse_duration(seconds))


def _row_json(row: QueueRow) -> dict[str, Any]:
    e = row.entry
    return {
        "id": e.key,
        "state": e.state.value,
        "created_at": e.created_at,
        "next_attempt_at": e.next_attempt_at,
        "attempts": e.attempts,
        "sender": row.mail_from,
        "subject": row.subject,
        "size": row.size,
        "recipients": [{"address": a, "state": s} for a, s in row.recipients],
        "lease_owner": e.lease_owner,
        "hold_reason": e.hold_reason,
        "last_error": e.last_error,
    }


async def _list(
    queue: QueueAdmin, where: QueueFilter, now: float, limit: int, *, as_json: bool
) -> int:
    rows = await queue.list_entries(where, now=now, limit=limit)
    out = sys.stdout
    if as_json:
        for row in rows:
            out.write(json.dumps(_row_json(row)) + "\n")
        return 0 if rows else EXIT_NOTHING
    for row in rows:
        e = row.entry
        pending = [a for a, s in row.recipients if s in ("queued", "deferred", "held")]
        shown = pending or [a for a, _ in row.recipients]
        next_try = f" next {_when(e.next_attempt_at)}" if e.state is QueueState.DEFERRED else ""
        out.write(
            f"{e.key:<30} {e.state.value:<9} age {_age(now, e.created_at):<6} "
            f"tries {e.attempts}{next_try}  {printable(row.mail_from or '<>')} -> "
            f"{printable(', '.join(shown))}\n"
        )
        reason = e.hold_reason if e.state is QueueState.HELD else e.last_error
        if reason:
            out.write(f"{'':<30} {printable(reason)}\n")
    out.write(f"{len(rows)} entries\n")
    return 0 if rows else EXIT_NOTHING


async def _show(db: Database, message_id: str, now: float, *, as_json: bool) -> int:
    view = await message_log.get_message(db, message_id.partition(".")[0])
    if view is None:
        sys.stderr.write(f"mxrelay: no message {printable(message_id)}\n")
        return EXIT_NOTHING
    if as_json:
        sys.stdout.write(json.dumps(dataclasses.asdict(view)) + "\n")
        return 0

    def line(text: str) -> None:
        # Subjects, addresses, HELO names and replies are what clients and servers wrote.
        sys.stdout.write(printable(text) + "\n")

    line(f"message     {view.id}")
    line(f"received    {_when(view.received_at)} ({_age(now, view.received_at)} ago)")
    user = f" user {view.username}" if view.username else ""
    line(f"client      {view.client_address} helo {view.helo}{user}")
    line(f"sender      {view.mail_from or '<>'}")
    line(f"subject     {view.subject}")
    line(f"from / to   {view.header_from} / {view.header_to}")
    line(f"message-id  {view.message_id_header}")
    line(f"size        {view.size} bytes, sha256 {view.sha256}")
    if view.body_pruned:
        line("body        pruned by retention")
    line("recipients")
    for r in view.recipients:
        reply = f" {r.code} {r.enhanced or ''} {r.text or ''}".rstrip() if r.code else ""
        line(f"  [{r.variant}] {r.address:<40} {r.state:<9} tries {r.attempts}{reply}")
    line("attempts" if view.attempts else "attempts    none yet")
    for a in view.attempts:
        remote = f" remote id {a.remote_id}" if a.remote_id else ""
        reply = f" {a.code or a.http_status or ''} {a.text or ''}".rstrip()
        line(
            f"  {_when(a.started_at)} [{a.variant}] #{a.attempt} {a.transport} {a.outcome} "
            f"{a.duration * 1000:.0f} ms{reply}{remote}"
        )
    return 0


async def _act(queue: QueueAdmin, args: argparse.Namespace, now: float) -> int:
    entries: list[QueueEntry] = []
    for name in args.ids:
        entry = await queue.get(name)
        if entry is None:
            sys.stderr.write(f"mxrelay: no queue entry {printable(name)}\n")
        else:
            entries.append(entry)
    if args.all:
        rows = await queue.list_entries(_filter(args), now=now, limit=1_000_000)
        entries.extend(row.entry for row in rows)
    elif not args.ids:
        sys.stderr.write("mxrelay: name entries, or use --all with filters\n")
        return EXIT_NOTHING
    action = {
        "retry": queue.retry,
        "hold": queue.hold,
        "release": queue.release,
        "delete": queue.delete,
    }[args.action]
    changed = await action(entries, now)
    sys.stdout.write(f"{changed} entries: {args.action}\n")
    return 0 if changed else EXIT_NOTHING
