"""Templates in, responses out: the Jinja2 environment, the filters the pages share, and `page()`.

Autoescaping is on for every template and undefined names fail (`StrictUndefined`), so a value
a client wrote (a subject, an address, a reply text) is always text on the page, never markup,
and a misspelt name is an error in the tests, not an empty cell. Every page response carries the
console's own policy (`policy.CONSOLE`), is never cached (it shows message data), and varies on
the htmx headers, because a fragment and its page share one URL.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from mxrelay import __version__
from mxrelay.web.console.actions import ACTIONS
from mxrelay.web.console.assets import Assets
from mxrelay.web.console.banner import faults
from mxrelay.web.console.context import ConsoleContext
from mxrelay.web.console.policy import CONSOLE, with_policy

THEME_COOKIE = "mxrelay_theme"


class Theme(enum.StrEnum):
    """The operator's choice; `auto` follows the system (prefers-color-scheme)."""

    AUTO = "auto"
    LIGHT = "light"
    DARK = "dark"


def environment(assets: Assets, webroot: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mxrelay.web.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.globals.update(
        webroot=webroot, asset_url=assets.url, integrity=assets.integrity, version=__version__
    )
    env.filters.update(when=when, size=human_size, seconds=seconds, ago=ago, plural=plural, iso=iso)
    return env


def when(timestamp: float | None) -> str:
    """A time as the lists show it, in UTC to the second."""
    if timestamp is None:
        return ""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def human_size(size: int) -> str:
    """Bytes as `812 B`, `4.2 kB`, `1.3 MB` (powers of 1000, as mail clients show sizes)."""
    if size < 1000:
        return f"{size} B"
    for unit in ("kB", "MB", "GB"):
        size_f = size / 1000
        if size_f < 1000 or unit == "GB":
            return f"{size_f:.1f} {unit}"
        size //= 1000
    return f"{size} GB"


def seconds(value: float | None) -> str:
    """A span as `850 ms`, `12.5 s`, `3 min`, `2.5 h`, `4 d`."""
    if value is None:
        return ""
    if value < 1:
        return f"{value * 1000:.0f} ms"
    if value < 60:
        return f"{value:.1f} s"
    if value < 3600:
        return f"{value / 60:.0f} min"
    if value < 86400:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def ago(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return ""
    delta = now - timestamp
    return f"in {seconds(-delta)}" if delta < 0 else f"{seconds(delta)} ago"


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def theme_of(request: Request) -> Theme:
    try:
        return Theme(request.cookies.get(THEME_COOKIE, Theme.AUTO.value))
    except ValueError:
        return Theme.AUTO


def is_fragment(request: Request, target: str) -> bool:
    """Whether htmx asks for the element `target` of this page only."""
    return (
        request.headers.get("hx-request") == "true" and request.headers.get("hx-target") == target
    )


def render(
    context: ConsoleContext, request: Request, template: str, *, section: str = "", **values: Any
) -> str:
    """A whole page (or, for htmx, one fragment template) as HTML."""
    return context.templates.get_template(template).render(
        banner=faults(context.health.snapshot()),
        theme=theme_of(request).value,
        section=section,
        poll_ms=int(context.poll_seconds * 1000),
        now=context.clock(),
        operator=context.operator(request),
        actions=ACTIONS,
        **values,
    )


def respond(html: str, *, status: int = 200) -> Response:
    """Rendered HTML as the console answers it: never cached (it shows message data), varying
    on the htmx headers (a fragment and its page share one URL), under the console's policy."""
    response = HTMLResponse(html, status_code=status)
    response.headers["cache-control"] = "no-store"
    response.headers["vary"] = "hx-request, hx-target"
    return with_policy(response, CONSOLE)


def page(
    context: ConsoleContext,
    request: Request,
    template: str,
    *,
    status: int = 200,
    section: str = "",
    **values: Any,
) -> Response:
    """A whole page (or, for htmx, one fragment template) as a response."""
    return respond(render(context, request, template, section=section, **values), status=status)
