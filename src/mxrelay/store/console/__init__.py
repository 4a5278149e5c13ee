"""Small reads the operator's console needs beside the message log's and the search's own.

Each function answers one panel of a page in one read transaction, bounded by its arguments:
`paging` (keyset pages over the search's own page finding, so a deep page costs what the first
one does, each message with its delivery states and transforms), `message` (one message's queue
entries, variants and the recipients refused in its transaction), `refusals` (the refusal log and
its per-domain counts), `activity` (the counts behind the summary charts) and `lanes` (the pacing
lanes as the queue page shows them). Listing and searching stay `search.py`'s.
"""

from __future__ import annotations

from mxrelay.store.console.activity import Series, activity
from mxrelay.store.console.lanes import LaneView, lane_views
from mxrelay.store.console.message import EntryView, MessageExtras, VariantView, message_extras
from mxrelay.store.console.paging import (
    ListedMessage,
    MessagePage,
    PageKey,
    log_version,
    message_page,
)
from mxrelay.store.console.refusals import (
    DomainCount,
    RefusalPage,
    RefusalView,
    refusal_page,
    refusals_by_domain,
)

__all__ = [
    "DomainCount",
    "EntryView",
    "LaneView",
    "ListedMessage",
    "MessageExtras",
    "MessagePage",
    "PageKey",
    "RefusalPage",
    "RefusalView",
    "Series",
    "VariantView",
    "activity",
    "lane_views",
    "log_version",
    "message_extras",
    "message_page",
    "refusal_page",
    "refusals_by_domain",
]
