"""The Content-Security-Policies of the console's responses, one per kind of response.

The application's default policy (`web/asgi.py`) allows no script at all; the console's pages
need their own script files, so they carry `CONSOLE` instead, set by the handler (a handler's
own header wins over the default). Nothing else is loosened: the API and every other route keep
the default, and no policy here allows inline script or `eval`.

Message content is the dangerous part. It is shown only through `preview()`: a sandboxed
document (the `sandbox` directive, so even opened on its own it has an opaque origin and runs
nothing) that may load no script, no style sheet, no font and no frame from anywhere, and images
only from the relay itself (inline parts) or as `data:` URLs, unless the operator asked for the
remote ones. It may be framed by the console alone. Parts served from the message get
`ATTACHMENT`: nothing in them can run or load, whatever their type claims.
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

ATTACHMENT = "default-src 'none'; sandbox; frame-ancestors 'self'; base-uri 'none'"
"""A part of a message (download or inline image): inert, whatever it contains."""


def preview(*, remote_images: bool) -> str:
    """The policy of a message's HTML as shown in the console's frame."""
    images = "'self' data: https: http:" if remote_images else "'self' data:"
    return "; ".join(
        (
            "default-src 'none'",
            f"img-src {images}",
            "style-src 'unsafe-inline'",  # inline styles are how mail is laid out; inert here
            "sandbox",
            "form-action 'none'",
            "base-uri 'none'",
            "frame-ancestors 'self'",
        )
    )


def with_policy(response: Response, policy: str, *, framable: bool = False) -> Response:
    """`response` with `policy`; `framable` lets the console itself frame it (the preview)."""
    response.headers["content-security-policy"] = policy
    if framable:
        response.headers["x-frame-options"] = "SAMEORIGIN"
    return response
