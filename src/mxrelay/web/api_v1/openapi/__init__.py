"""mxrelay's OpenAPI 3.1 document: every route of the message-log API, served at
`/api/v1/swagger.json` (`../swagger.py`).

Built in Python rather than kept as a YAML or JSON file: the pieces dozens of operations share
(the message ID parameter, Mailpit's plain-text answers, the refusals every route may give) are
named once in `parts.py`; the bounds the handlers enforce (the page size, the largest offset) are
imported from them, not restated; mypy checks the builders; and the relay needs no YAML parser.
`mailpit.py` has Mailpit's paths, `own.py` mxrelay's, `schemas.py` the objects of both.
tests/web/api_v1/test_swagger.py keeps the document's paths and the routes equal, and the
schemathesis run checks every answer against it.
"""

from __future__ import annotations

from mxrelay import __version__
from mxrelay.web.api_v1.openapi.mailpit import mailpit_paths
from mxrelay.web.api_v1.openapi.own import own_paths
from mxrelay.web.api_v1.openapi.parts import Json, text_answer
from mxrelay.web.api_v1.openapi.schemas import MAILPIT, OWN

DESCRIPTION = """\
mxrelay's message log, in Mailpit's API (the paths, parameters, status codes, error texts and
JSON shapes of Mailpit v1.28), plus mxrelay's own routes (tagged `mxrelay`). Mailpit's
`html-check`, `link-check`, `sa-check` and `chaos` routes are not served.

Credentials: HTTP Basic, when the relay has a users file (`MXRELAY_UI_AUTH_FILE`): a `viewer`
reads, an `operator` also changes (read flags, tags, deletion, release); `/api/v1/send` takes the
users of `MXRELAY_SEND_API_AUTH_FILE` when that is set. A request that changes state from
another site (by `Origin` or `Sec-Fetch-Site`) is refused with 403.
"""


def _responses() -> dict[str, Json]:
    unauthorized = text_answer("No valid credentials")
    unauthorized["headers"] = {
        "WWW-Authenticate": {"description": "The Basic challenge", "schema": {"type": "string"}}
    }
    return {
        "OK": text_answer("Done: the text `ok`"),
        "Error": text_answer("A request the relay will not answer, and why"),
        "NotFound": text_answer("No such message (or part): `404 page not found`"),
        "Unauthorized": unauthorized,
        "Forbidden": text_answer("A viewer acting, or a request from another site"),
        "TooManyFailures": text_answer("Too many failed logins from this address: wait"),
        "MessagesSummary": {
            "description": "One page of messages",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/MessagesSummary"}}
            },
        },
    }


def document() -> Json:
    """The whole document, built afresh (the caller keeps it)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mxrelay message-log API",
            "version": f"v{__version__}",
            "description": DESCRIPTION,
            "license": {"name": "MIT", "identifier": "MIT"},
        },
        "servers": [{"url": "/"}],
        "security": [{"basicAuth": []}, {}],
        "tags": [
            {"name": "messages", "description": "The list, search and bulk actions"},
            {"name": "message", "description": "One message, its parts; send and release"},
            {"name": "tags", "description": "Message tags"},
            {"name": "testing", "description": "Views for UI tests"},
            {"name": "application", "description": "The relay"},
            {"name": "mxrelay", "description": "mxrelay's own routes"},
        ],
        "paths": {**mailpit_paths(), **own_paths()},
        "components": {
            "schemas": {**MAILPIT, **OWN},
            "responses": _responses(),
            "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
        },
    }
