"""`mxrelay db upgrade|current`: apply the store's migrations, or show where the schema stands."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from typing import Any

from mxrelay.cli.common import load_or_exit
from mxrelay.config import redact_url
from mxrelay.store.backend import StoreError
from mxrelay.store.migrate import current_revision, head_revision
from mxrelay.store.open import OpenMode, open_store

EXIT_STORE = 1


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "db",
        help="upgrade the store's schema",
        description="Manage the store's schema (MXRELAY_DATABASE_URL). The relay also upgrades "
        "it at start-up; with SQLite, stop the relay first (one process per file).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("upgrade", help="apply pending migrations").set_defaults(handler=run)
    actions.add_parser("current", help="print the schema revision").set_defaults(handler=run)


def run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    settings = load_or_exit(environ)
    url = settings.store.database_url
    try:
        if args.action == "upgrade":
            asyncio.run(_upgrade(url))
            sys.stdout.write(f"{redact_url(url)}: schema at revision {head_revision()}\n")
        else:
            revision = asyncio.run(_current(url))
            state = "up to date" if revision == head_revision() else f"head is {head_revision()}"
            sys.stdout.write(f"{redact_url(url)}: revision {revision or 'none'} ({state})\n")
    except StoreError as exc:
        sys.stderr.write(f"mxrelay: {exc}\n")
        return EXIT_STORE
    return 0


async def _upgrade(url: str) -> None:
    async with open_store(url, OpenMode.UPGRADE):
        pass


async def _current(url: str) -> str | None:
    async with open_store(url, OpenMode.INSPECT) as db:
        return await db.read(current_revision)
