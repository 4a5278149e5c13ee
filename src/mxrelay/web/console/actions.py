"""What an operator can do to messages from the console, as calls of the message-log API.

The console holds no write route of its own: each action is a request the page's script sends
to the API (with the operator's own credentials; the API checks the role, refuses cross-site
requests and writes the audit log), after a confirmation. This table is the one place that says
which call each button makes. Viewers are shown none of it (`ConsoleContext.operator`).

`body` says how the script builds the JSON body: `ids` ({"IDs": [...]}), `read`/`unread`
({"IDs": [...], "Read": true|false}), `tags` ({"IDs": [...], "Tags": [typed]}), `release`
({"To": [typed]}, one message). An action never goes out without at least one ID: for Mailpit's
API an empty list means every message.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Body(enum.StrEnum):
    IDS = "ids"
    READ = "read"
    UNREAD = "unread"
    TAGS = "tags"
    RELEASE = "release"


@dataclass(frozen=True, slots=True)
class Action:
    key: str
    label: str
    method: str
    path: str
    """Under the web root; `{id}` is the message's id (single-message actions)."""
    body: Body
    confirm: str
    danger: bool = False
    single: bool = False
    """Only on one message (not on a selection)."""


ACTIONS = (
    Action("read", "Mark read", "PUT", "api/v1/messages", Body.READ, "Mark {n} as read?"),
    Action("unread", "Mark unread", "PUT", "api/v1/messages", Body.UNREAD, "Mark {n} as unread?"),
    Action(
        "tag",
        "Tag…",
        "PUT",
        "api/v1/tags",
        Body.TAGS,
        "Set the tags of {n} (comma-separated; empty clears them):",
    ),
    Action(
        "retry",
        "Retry now",
        "POST",
        "api/v1/mxrelay/messages/retry",
        Body.IDS,
        "Try delivering {n} again now?",
    ),
    Action(
        "hold",
        "Hold",
        "POST",
        "api/v1/mxrelay/messages/hold",
        Body.IDS,
        "Hold {n}? Nothing is delivered until resumed.",
    ),
    Action(
        "resume",
        "Resume",
        "POST",
        "api/v1/mxrelay/messages/resume",
        Body.IDS,
        "Resume delivery of {n}?",
    ),
    Action(
        "cancel",
        "Cancel delivery",
        "POST",
        "api/v1/mxrelay/messages/cancel",
        Body.IDS,
        "Cancel the delivery of {n}? The log entry stays.",
        danger=True,
    ),
    Action(
        "release",
        "Release a copy…",
        "POST",
        "api/v1/message/{id}/release",
        Body.RELEASE,
        "Send a copy of this message to (comma-separated addresses; each is checked as at RCPT):",
        single=True,
    ),
    Action(
        "delete",
        "Delete",
        "DELETE",
        "api/v1/messages",
        Body.IDS,
        "Delete {n} from the log? This cannot be undone.",
        danger=True,
    ),
)
