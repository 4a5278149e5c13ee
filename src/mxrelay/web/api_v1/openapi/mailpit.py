"""The paths of Mailpit's API, as mxrelay answers them: Mailpit's paths, parameters, status codes
and shapes (what `../../api_v1` modules implement), described for mxrelay (no call-outs, the
search extensions, what a release does here).

Mailpit's `html-check`, `link-check`, `sa-check` and `chaos` are not served, so not described.
"""

from __future__ import annotations

from mxrelay.web.api_v1.context import MAX_LIMIT, MAX_START
from mxrelay.web.api_v1.openapi.parts import (
    BOOLEAN,
    STRING,
    STRINGS,
    Json,
    answer,
    described,
    json_answer,
    operation,
    path_parameter,
    query_parameter,
    ref,
    request_obj,
    schema,
    text_answer,
)

MESSAGE_ID = path_parameter("ID", "The message's database ID, or `latest` for the newest")
PART_ID = path_parameter("PartID", "The part's number, as the message's attachment list gives it")
TAG = path_parameter("Tag", "The tag's name, URL-encoded")
START = query_parameter(
    "start",
    "Offset of the page (negative counts as 0)",
    {"type": "integer", "default": 0, "maximum": MAX_START},
)
LIMIT = query_parameter(
    "limit",
    f"Messages on the page, clamped to 1–{MAX_LIMIT}",
    {"type": "integer", "default": 50},
)
LATEST_QUERY = query_parameter(
    "query", "With the ID `latest`: the newest message matching this search"
)
TZ = query_parameter(
    "tz", "Time zone (IANA name) of the dates in `before:` and `after:`, UTC when absent"
)
SEARCH = query_parameter(
    "query",
    "A search: Mailpit's syntax (words, quoted phrases, `from:`, `to:`, `cc:`, `bcc:`, "
    "`addressed:`, `subject:`, `message-id:`, `tag:`, `is:`, `has:`, `larger:`, `smaller:`, "
    "`after:`, `before:`, `-` to negate) and mxrelay's `status:`, `refused:`, `transport:`",
    required=True,
)

OK = ref("responses", "OK")
NOT_FOUND = ref("responses", "NotFound")
MESSAGE_TAG = "message"
MESSAGES_TAG = "messages"


def _message_get(operation_id: str, summary: str, description: str, found: Json) -> Json:
    return {
        "get": operation(
            operation_id,
            summary,
            description,
            tag=MESSAGE_TAG,
            parameters=[MESSAGE_ID, LATEST_QUERY],
            answers={"200": found, "404": NOT_FOUND},
        )
    }


def messages_paths() -> dict[str, Json]:
    ids = described(STRINGS, "Message database IDs")
    return {
        "/api/v1/messages": {
            "get": operation(
                "listMessages",
                "List messages",
                "The log, newest first, one page at a time.",
                tag=MESSAGES_TAG,
                parameters=[
                    START,
                    LIMIT,
                    query_parameter("before", "Only messages received before this time"),
                ],
                answers={"200": ref("responses", "MessagesSummary")},
            ),
            "put": operation(
                "setReadStatus",
                "Set read status",
                "Marks the messages named by `IDs`, or matching `Search`, read or unread; "
                "neither marks every message.",
                tag=MESSAGES_TAG,
                parameters=[TZ],
                body=request_obj({"IDs": ids, "Read": BOOLEAN, "Search": STRING}),
                answers={"200": OK},
            ),
            "delete": operation(
                "deleteMessages",
                "Delete messages",
                "Deletes the messages named by `IDs`. No IDs, an empty body or one that is "
                "not JSON deletes every message, as Mailpit does.",
                tag=MESSAGES_TAG,
                body=request_obj({"IDs": ids}),
                answers={"200": OK},
            ),
        },
        "/api/v1/search": {
            "get": operation(
                "searchMessages",
                "Search messages",
                "The messages matching a search, newest first, one page at a time.",
                tag=MESSAGES_TAG,
                parameters=[SEARCH, START, LIMIT, TZ],
                answers={"200": ref("responses", "MessagesSummary")},
            ),
            "delete": operation(
                "deleteSearch",
                "Delete messages by search",
                "Deletes every message matching a search.",
                tag=MESSAGES_TAG,
                parameters=[SEARCH, TZ],
                answers={"200": OK},
            ),
        },
    }


def message_paths() -> dict[str, Json]:
    return {
        "/api/v1/message/{ID}": _message_get(
            "getMessage",
            "Get a message",
            "The whole message, and marks it read. `latest?query=` is the newest match.",
            json_answer("The message", schema("Message")),
        ),
        "/api/v1/message/{ID}/headers": _message_get(
            "getMessageHeaders",
            "Get a message's headers",
            "Every header field, by name, each with all its values.",
            json_answer("The headers", schema("MessageHeaders")),
        ),
        "/api/v1/message/{ID}/raw": {
            "get": operation(
                "getMessageRaw",
                "Get a message's source",
                "The message exactly as stored, as plain text.",
                tag=MESSAGE_TAG,
                parameters=[
                    MESSAGE_ID,
                    LATEST_QUERY,
                    query_parameter("dl", "`1` adds a download disposition"),
                ],
                answers={"200": text_answer("The source"), "404": NOT_FOUND},
            )
        },
        "/api/v1/message/{ID}/part/{PartID}": {
            "get": operation(
                "getMessagePart",
                "Get an attachment or inline part",
                "The decoded part, with its own content type.",
                tag=MESSAGE_TAG,
                parameters=[MESSAGE_ID, PART_ID, LATEST_QUERY],
                answers={
                    "200": answer("The part", {"*/*": {"schema": {"format": "binary"}}}),
                    "404": NOT_FOUND,
                },
            )
        },
        "/api/v1/message/{ID}/part/{PartID}/thumb": {
            "get": operation(
                "getMessagePartThumbnail",
                "Get an image part's thumbnail",
                "A 180×120 JPEG of an image part (padded when smaller; blank when the part "
                "is no image).",
                tag=MESSAGE_TAG,
                parameters=[MESSAGE_ID, PART_ID, LATEST_QUERY],
                answers={
                    "200": answer(
                        "The thumbnail", {"image/jpeg": {"schema": {"format": "binary"}}}
                    ),
                    "400": text_answer("No such part (`attachment not found`), or message"),
                },
            )
        },
        "/api/v1/message/{ID}/release": {
            "post": operation(
                "releaseMessage",
                "Release a message",
                "Sends a copy to `To` through mxrelay's own pipeline: recipient checks, "
                "transforms, store, queue and delivery. The copy is a new message linked to "
                "this one; a refused recipient gives 400 with the SMTP reply.",
                tag=MESSAGE_TAG,
                parameters=[MESSAGE_ID, LATEST_QUERY],
                body=request_obj({"To": STRINGS}, required=["To"]),
                body_required=True,
                answers={"200": OK, "404": NOT_FOUND},
            )
        },
        "/api/v1/send": {
            "post": operation(
                "sendMessage",
                "Send a message",
                "Builds a message and passes it through the same checks and pipeline as SMTP "
                "mail. Needs the send-API credentials when the relay has some.",
                tag=MESSAGE_TAG,
                body=schema("SendRequest"),
                body_required=True,
                answers={
                    "200": json_answer("The new message", schema("SendConfirmation")),
                    "400": json_answer("Why the message was refused", schema("JSONError")),
                    "413": json_answer("The message is too large", schema("JSONError")),
                },
            )
        },
    }


def view_paths() -> dict[str, Json]:
    return {
        "/view/latest": {
            "get": operation(
                "viewLatest",
                "The newest message's page",
                "Redirects to the web UI's page of the newest message (or of the newest match "
                "of `query`), or to the message list when there is none.",
                tag="testing",
                parameters=[LATEST_QUERY],
                answers={
                    "302": answer(
                        "Where the page is",
                        headers={"Location": {"description": "The page", "schema": STRING}},
                    )
                },
            )
        },
        "/view/{ID}.html": {
            "get": operation(
                "viewMessageHTML",
                "The message's HTML part",
                "For UI tests; scripts never run (a Content-Security-Policy forbids them). "
                "404 when the message has no HTML part.",
                tag="testing",
                parameters=[
                    MESSAGE_ID,
                    LATEST_QUERY,
                    query_parameter("embed", "`1` to open links in a new window"),
                    query_parameter(
                        "remote",
                        "mxrelay's own: `1` to let remote images load (nothing else remote does)",
                    ),
                ],
                answers={
                    "200": answer("The HTML", {"text/html": {"schema": STRING}}),
                    "404": NOT_FOUND,
                },
            )
        },
        "/view/{ID}.txt": {
            "get": operation(
                "viewMessageText",
                "The message's text part",
                "For UI tests.",
                tag="testing",
                parameters=[MESSAGE_ID, LATEST_QUERY],
                answers={"200": text_answer("The text"), "404": NOT_FOUND},
            )
        },
    }


def tags_paths() -> dict[str, Json]:
    return {
        "/api/v1/tags": {
            "get": operation(
                "getTags",
                "Every tag",
                "The names of every tag in use, sorted.",
                tag="tags",
                answers={"200": json_answer("The tags", STRINGS)},
            ),
            "put": operation(
                "setTags",
                "Set message tags",
                "Replaces the tags of the messages named by `IDs`; no `Tags` clears them.",
                tag="tags",
                body=request_obj({"IDs": STRINGS, "Tags": STRINGS}, required=["IDs"]),
                body_required=True,
                answers={"200": OK},
            ),
        },
        "/api/v1/tags/{Tag}": {
            "put": operation(
                "renameTag",
                "Rename a tag",
                "Renames a tag on every message that has it.",
                tag="tags",
                parameters=[TAG],
                body=request_obj({"Name": STRING}, required=["Name"]),
                body_required=True,
                answers={"200": OK},
            ),
            "delete": operation(
                "deleteTag",
                "Delete a tag",
                "Removes a tag from every message; the messages stay.",
                tag="tags",
                parameters=[TAG],
                answers={"200": OK},
            ),
        },
    }


def application_paths() -> dict[str, Json]:
    return {
        "/api/v1/info": {
            "get": operation(
                "getInfo",
                "Application information",
                "Version, message counts, database and runtime counters.",
                tag="application",
                answers={"200": json_answer("The relay", schema("AppInformation"))},
            )
        },
        "/api/v1/webui": {
            "get": operation(
                "getWebUIConfiguration",
                "Web UI configuration",
                "What the web UI needs to know.",
                tag="application",
                answers={"200": json_answer("The settings", schema("WebUIConfiguration"))},
            )
        },
        "/api/v1/swagger.json": {
            "get": operation(
                "getOpenAPI",
                "This document",
                "The OpenAPI document of every route.",
                tag="application",
                answers={"200": json_answer("The document", {"type": "object"})},
            )
        },
    }


def mailpit_paths() -> dict[str, Json]:
    return {
        **messages_paths(),
        **message_paths(),
        **view_paths(),
        **tags_paths(),
        **application_paths(),
    }
