"""The operator's page: recent messages with their delivery state, searchable, and each message's
recipients and attempts. Server-rendered HTML (no JavaScript); every value is escaped."""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from mxrelay import __version__
from mxrelay.store.backend import Database
from mxrelay.store.message_log import MessageView, get_message
from mxrelay.store.search import MessageSummary, SearchQuery, parse_search, search_messages

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1f2328; }
header { background: #24292f; color: #fff; padding: .6rem 1rem; display: flex; gap: 1rem;
  align-items: center; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
main { padding: 1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #d0d7de;
  vertical-align: top; }
th { background: #f6f8fa; }
.state { border-radius: 1em; padding: 0 .5em; font-size: 12px; background: #eaeef2; }
.delivered { background: #dafbe1; } .failed { background: #ffebe9; }
.deferred, .held { background: #fff8c5; }
input[type=search] { width: 24rem; padding: .25rem; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
dt { font-weight: 600; }
"""
"""The page's only style sheet; the Content-Security-Policy allows exactly this text by its hash."""

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{style}</style></head>
<body><header><a href="/">mxrelay</a>
<form action="/" method="get"><input type="search" name="q" value="{query}"
 placeholder="words, from:, to:, status:failed" aria-label="search"></form>
<span>{version}</span></header>
<main>{body}</main></body></html>"""


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _page(title: str, body: str, query: str = "") -> HTMLResponse:
    return HTMLResponse(
        PAGE.format(
            style=STYLE,
            title=html.escape(title),
            query=html.escape(query),
            version=html.escape(f"v{__version__}"),
            body=body,
        )
    )


def _rows(found: Sequence[MessageSummary]) -> str:
    if not found:
        return "<p>No messages.</p>"
    cells = "".join(
        '<tr><td>{when}</td><td>{sender}</td><td>{to}</td><td><a href="message/{id}">{subject}</a>'
        "</td><td>{size}</td></tr>".format(
            when=_when(m.received_at),
            sender=html.escape(m.mail_from or "<>"),
            to=html.escape(m.header_to),
            id=quote(m.id),
            subject=html.escape(m.subject or "(no subject)"),
            size=m.size,
        )
        for m in found
    )
    return (
        "<table><thead><tr><th>received</th><th>envelope sender</th><th>To</th><th>subject</th>"
        f"<th>bytes</th></tr></thead><tbody>{cells}</tbody></table>"
    )


def _detail(view: MessageView) -> str:
    facts = [
        ("received", _when(view.received_at)),
        ("client", f"{view.client_address} (HELO {view.helo})"),
        ("TLS", view.tls_version or "none"),
        ("user", view.username or "none"),
        ("envelope sender", view.mail_from or "<>"),
        ("From", view.header_from),
        ("Message-ID", view.message_id_header),
        ("size", f"{view.size} bytes, SHA-256 {view.sha256}"),
        ("transforms", "; ".join(view.transforms) or "none"),
        ("body", "pruned" if view.body_pruned else "kept"),
    ]
    dl = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in facts)
    recipients = "".join(
        f'<tr><td>{html.escape(r.address)}</td><td><span class="state {html.escape(r.state)}">'
        f"{html.escape(r.state)}</span></td><td>{r.attempts}</td>"
        f"<td>{html.escape(' '.join(str(x) for x in (r.code, r.enhanced, r.text) if x))}</td></tr>"
        for r in view.recipients
    )
    attempts = "".join(
        f"<tr><td>{_when(a.started_at)}</td><td>{html.escape(a.transport)}</td>"
        f"<td>{html.escape(a.outcome)}</td><td>{a.duration:.3f} s</td>"
        f"<td>{html.escape(' '.join(str(x) for x in (a.code, a.enhanced, a.text) if x))}</td>"
        f"<td>{html.escape(a.remote_id or '')}</td></tr>"
        for a in view.attempts
    )
    return (
        f"<h1>{html.escape(view.subject or '(no subject)')}</h1><dl>{dl}</dl>"
        "<h2>Recipients</h2><table><thead><tr><th>address</th><th>state</th><th>attempts</th>"
        f"<th>last reply</th></tr></thead><tbody>{recipients}</tbody></table>"
        "<h2>Delivery attempts</h2><table><thead><tr><th>started</th><th>transport</th>"
        "<th>outcome</th><th>duration</th><th>reply</th><th>remote id</th></tr></thead>"
        f"<tbody>{attempts or '<tr><td colspan=6>none yet</td></tr>'}</tbody></table>"
        f'<p><a href="../api/v1/message/{quote(view.id)}/raw">raw message</a></p>'
    )


def ui_routes(db: Callable[[], Database | None]) -> Sequence[Route]:
    async def index(request: Request) -> Response:
        database = db()
        query = request.query_params.get("q", "").strip()
        if database is None:
            return _page("mxrelay", "<p>Passthrough mode keeps no message log.</p>", query)
        found = await search_messages(
            database, parse_search(query) if query else SearchQuery(), limit=100
        )
        return _page("mxrelay", _rows(found), query)

    async def detail(request: Request) -> Response:
        database = db()
        view = await get_message(database, request.path_params["id"]) if database else None
        if view is None:
            return HTMLResponse("<p>Not found.</p>", status_code=404)
        return _page(view.subject or "message", _detail(view))

    return [Route("/", index), Route("/message/{id}", detail)]
