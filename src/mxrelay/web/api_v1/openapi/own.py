"""The paths of mxrelay's own routes: what a relay knows that Mailpit has no data for (delivery
history, the queue, refused recipients, the audit log), in objects of mxrelay's own, and the
websocket of live events (Mailpit's frames and mxrelay's)."""

from __future__ import annotations

from mxrelay.model import Reason
from mxrelay.web.api_v1.context import MAX_LIMIT
from mxrelay.web.api_v1.mxrelay_queue import SELECTION_LIMIT
from mxrelay.web.api_v1.openapi.mailpit import LIMIT, MESSAGE_ID, NOT_FOUND, START
from mxrelay.web.api_v1.openapi.parts import (
    STRINGS,
    Json,
    answer,
    json_answer,
    operation,
    path_parameter,
    query_parameter,
    request_obj,
    schema,
    text_answer,
)

QUEUE_ACTIONS = ("retry", "hold", "resume", "cancel")
TIME = "RFC 3339 or Unix seconds"


def _since_until(what: str) -> list[Json]:
    return [
        query_parameter("since", f"{what} from this time on ({TIME})"),
        query_parameter("until", f"{what} up to this time ({TIME})"),
    ]


def deliveries_paths() -> dict[str, Json]:
    return {
        "/api/v1/message/{ID}/deliveries": {
            "get": operation(
                "getMessageDeliveries",
                "A message's deliveries",
                "Each recipient's delivery state and last reply, every attempt, what the "
                "transforms did, and the original of a released copy.",
                tag="mxrelay",
                parameters=[MESSAGE_ID],
                answers={
                    "200": json_answer("The deliveries", schema("Deliveries")),
                    "404": NOT_FOUND,
                },
            )
        },
    }


def queue_paths() -> dict[str, Json]:
    action = {
        **path_parameter("Action", "What to do with the message's queue entries"),
        "schema": {"type": "string", "enum": list(QUEUE_ACTIONS)},
    }
    return {
        "/api/v1/mxrelay/queue": {
            "get": operation(
                "getQueueSummary",
                "The queue",
                "Entries by state, the age of the oldest waiting one, Graph's pacing lanes "
                "(PostgreSQL) and the status conditions that fail.",
                tag="mxrelay",
                answers={"200": json_answer("The summary", schema("QueueSummary"))},
            )
        },
        "/api/v1/mxrelay/messages/{Action}": {
            "post": operation(
                "actOnQueueSelection",
                "Retry, hold, resume or cancel several messages",
                f"The action of `/api/v1/mxrelay/message/{{ID}}/{{Action}}` on each message "
                f"`IDs` names (at most {SELECTION_LIMIT}; none is refused, never taken as all).",
                tag="mxrelay",
                parameters=[action],
                body=request_obj({"IDs": STRINGS}, required=["IDs"]),
                body_required=True,
                answers={
                    "200": json_answer("What changed", schema("QueueActions")),
                    "404": NOT_FOUND,
                    "413": text_answer("The request is too large"),
                },
            )
        },
        "/api/v1/mxrelay/message/{ID}/{Action}": {
            "post": operation(
                "actOnQueue",
                "Retry, hold, resume or cancel a message",
                "`retry`: its entries due now (a dead one with a fresh lifetime); `hold`: kept "
                "from delivery until `resume`; `cancel`: out of the live queue (dead, the log "
                "keeps the message). Announced as a `delivery` event.",
                tag="mxrelay",
                parameters=[MESSAGE_ID, action],
                answers={
                    "200": json_answer("What changed", schema("QueueAction")),
                    "404": NOT_FOUND,
                },
            )
        },
    }


def refusal_paths() -> dict[str, Json]:
    reason = query_parameter(
        "reason",
        "Why the recipient was refused",
        {"type": "string", "enum": sorted(r.value for r in Reason)},
    )
    return {
        "/api/v1/mxrelay/refusals": {
            "get": operation(
                "searchRefusals",
                "Refused recipients",
                "Recipients refused at RCPT, newest first.",
                tag="mxrelay",
                parameters=[
                    query_parameter("address", "The recipient contains this"),
                    query_parameter("domain", "The recipient's domain is this"),
                    reason,
                    *_since_until("Refusals"),
                    START,
                    LIMIT,
                ],
                answers={"200": json_answer("A page of refusals", schema("Refusals"))},
            )
        },
        "/api/v1/mxrelay/refusals/domains": {
            "get": operation(
                "countRefusedDomains",
                "The domains refused most",
                "Refusals per recipient domain between `since` (a day before `until` by "
                "default) and `until` (now by default), at most a week apart.",
                tag="mxrelay",
                parameters=[
                    *_since_until("Refusals"),
                    query_parameter(
                        "limit",
                        f"Domains listed, 1–{MAX_LIMIT}",
                        {"type": "integer", "default": 100},
                    ),
                ],
                answers={"200": json_answer("The counts", schema("RefusedDomains"))},
            )
        },
    }


def audit_paths() -> dict[str, Json]:
    return {
        "/api/v1/mxrelay/audit": {
            "get": operation(
                "listAudit",
                "The audit log",
                "Who deleted, marked, tagged, released, retried or sent what through the API, "
                "when, from where, on how many; newest first.",
                tag="mxrelay",
                parameters=[
                    query_parameter("actor", "The user"),
                    query_parameter("action", "The action (`delete`, `release`, `send`, …)"),
                    query_parameter("outcome", "`ok`, `denied`, `refused` or `error`"),
                    *_since_until("Entries"),
                    START,
                    LIMIT,
                ],
                answers={"200": json_answer("A page of the log", schema("AuditPage"))},
            )
        },
    }


def events_paths() -> dict[str, Json]:
    return {
        "/api/events": {
            "get": operation(
                "events",
                "Live events (a websocket)",
                "Upgrades to a websocket of `{Type, Data}` frames: Mailpit's `new` (a "
                "MessageSummary), `update` (`{ID, Read}` or `{ID, Tags}`), `delete` (`{ID}`), "
                "`prune`, `truncate`, `stats` (`{Total, Unread, Version}`), `error`; and "
                "mxrelay's `delivery` (an attempt, or a queue action) and `refusal` (a refused "
                "recipient). A handshake from another origin is refused.",
                tag="mxrelay",
                parameters=[
                    query_parameter(
                        "brief",
                        "`1`: one frame without data per kind of event and poll, no `stats` "
                        "(what the console's pages ask for)",
                    )
                ],
                answers={"101": answer("Switching to the websocket")},
            )
        },
    }


def own_paths() -> dict[str, Json]:
    return {
        **deliveries_paths(),
        **queue_paths(),
        **refusal_paths(),
        **audit_paths(),
        **events_paths(),
    }
