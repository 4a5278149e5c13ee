"""The Content-Security-Policy of the console's pages.

The application's default policy (`web/asgi.py`) allows no script at all; the console's pages
need their own script files, so they carry `CONSOLE` instead, set by the handler (a handler's
own header wins over the default). Nothing else is loosened: the API and every other route keep
the default, and no policy here allows inline script or `eval`.

Message content is the dangerous part, and the console serves none of it: a message's HTML is
framed from the API's `/view/{ID}.html` (sandboxed, under that route's policy: no script, no
remote load unless asked for), its parts come from the API's part route, under the default
policy.
"""

from __future__ import annotations

from starlette.responses import Response

CONSOLE = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    )
)
"""The console's pages: their own scripts and style sheet (files, never inline), images from
the relay, requests and the event socket to the relay, the preview frame from the relay."""


def with_policy(response: Response, policy: str) -> Response:
    response.headers["content-security-policy"] = policy
    return response
