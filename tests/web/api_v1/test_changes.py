"""The changes the message-list routes report, as the frames Mailpit's websocket sends for them."""

from __future__ import annotations

from mxrelay.web.api_v1.changes import (
    MANY,
    MessagesDeleted,
    ReadChanged,
    TagsChanged,
    TagsPruned,
    ignore_change,
    mailpit_events,
)


def test_frames() -> None:
    assert mailpit_events(MessagesDeleted(("a", "b"), count=2)) == [
        ("delete", {"ID": "a"}),
        ("delete", {"ID": "b"}),
    ]
    assert mailpit_events(MessagesDeleted(("a",), count=MANY + 1)) == [("prune", None)]
    assert mailpit_events(MessagesDeleted((), everything=True)) == [("truncate", None)]
    assert mailpit_events(ReadChanged(("a",), False)) == [("update", {"ID": "a", "Read": False})]
    assert mailpit_events(ReadChanged(("a",), True, everything=True)) == []
    assert mailpit_events(TagsChanged({"a": ("x", "y")})) == [
        ("update", {"ID": "a", "Tags": ["x", "y"]})
    ]
    assert mailpit_events(TagsPruned()) == [("prune", None)]
    ignore_change(TagsPruned())  # nobody listening: nothing happens
