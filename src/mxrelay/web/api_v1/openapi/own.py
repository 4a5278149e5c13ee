"""The paths of mxrelay's own routes: what a relay knows that Mailpit has no data for (delivery
history, the queue, refused recipients, the audit log), in objects of mxrelay's own."""

from __future__ import annotations

from mxrelay.web.api_v1.openapi.mailpit import MESSAGE_ID, NOT_FOUND
from mxrelay.web.api_v1.openapi.parts import Json, json_answer, operation, schema


def own_paths() -> dict[str, Json]:
    return {
        "/api/v1/message/{ID}/deliveries": {
            "get": operation(
                "getMessageDeliveries",
                "A message's deliveries",
                "Each recipient's delivery state and last reply, every attempt, and what the "
                "transforms did.",
                tag="mxrelay",
                parameters=[MESSAGE_ID],
                answers={
                    "200": json_answer("The deliveries", schema("Deliveries")),
                    "404": NOT_FOUND,
                },
            )
        },
    }
