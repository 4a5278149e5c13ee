"""The objects of the OpenAPI document: Mailpit's (v1.28, key for key: PascalCase message
objects in a snake_case list wrapper) and mxrelay's own.

Mailpit's objects are closed (`additionalProperties: false`) and every key is required: a strict
client compares key sets, so the schema check fails on a key too many or one missing. Request
bodies stay open, as Go's decoder ignores unknown keys (and matches known ones whatever their
case, which a schema cannot say: the descriptions do).
"""

from __future__ import annotations

from mxrelay.model import QueueState
from mxrelay.web.api_v1.openapi.parts import (
    BOOLEAN,
    COUNT,
    STRING,
    STRINGS,
    TIMESTAMP,
    Json,
    array,
    described,
    nullable,
    obj,
    request_obj,
    schema,
)

ADDRESSES = array(schema("Address"))

MAILPIT: dict[str, Json] = {
    "Address": obj({"Name": STRING, "Address": STRING}),
    "MessageSummary": obj(
        {
            "ID": described(STRING, "Database ID"),
            "MessageID": described(STRING, "The Message-ID header, without angle brackets"),
            "Read": BOOLEAN,
            "From": schema("Address"),
            "To": ADDRESSES,
            "Cc": ADDRESSES,
            "Bcc": described(ADDRESSES, "Bcc header, and envelope recipients named in no header"),
            "ReplyTo": ADDRESSES,
            "Subject": STRING,
            "Created": described(TIMESTAMP, "When the relay received the message"),
            "Username": described(STRING, "The SMTP or send-API user, if one authenticated"),
            "Tags": STRINGS,
            "Size": described(COUNT, "Bytes"),
            "Attachments": described(COUNT, "How many attachments"),
            "Snippet": described(STRING, "Up to 250 characters of the text"),
        }
    ),
    "MessagesSummary": obj(
        {
            "total": described(COUNT, "Messages in the log"),
            "unread": described(COUNT, "Unread messages in the log"),
            "count": {**COUNT, "description": "Messages on this page", "deprecated": True},
            "messages_count": described(COUNT, "Messages matching the query"),
            "messages_unread": described(COUNT, "Unread messages matching the query"),
            "start": described(COUNT, "The offset of this page"),
            "tags": described(STRINGS, "Every tag"),
            "messages": array(schema("MessageSummary")),
        }
    ),
    "Attachment": obj(
        {
            "PartID": described(STRING, "The part's number, as /part/{PartID} takes it"),
            "FileName": STRING,
            "ContentType": STRING,
            "ContentID": STRING,
            "Size": described(COUNT, "Decoded bytes"),
            "Checksums": obj({"MD5": STRING, "SHA1": STRING, "SHA256": STRING}),
        }
    ),
    "ListUnsubscribe": obj(
        {
            "Header": described(STRING, "The List-Unsubscribe header"),
            "Links": described(STRINGS, "At most one mailto: and one http(s) link"),
            "Errors": described(STRING, "What is wrong with the header, in Mailpit's words"),
            "HeaderPost": described(STRING, "The List-Unsubscribe-Post header"),
        }
    ),
    "Message": obj(
        {
            "ID": described(STRING, "Database ID"),
            "MessageID": STRING,
            "From": schema("Address"),
            "To": ADDRESSES,
            "Cc": ADDRESSES,
            "Bcc": ADDRESSES,
            "ReplyTo": ADDRESSES,
            "ReturnPath": described(STRING, "The envelope sender"),
            "Subject": STRING,
            "ListUnsubscribe": schema("ListUnsubscribe"),
            "Date": described(TIMESTAMP, "The Date header, else when the relay received it"),
            "Tags": STRINGS,
            "Username": STRING,
            "Text": STRING,
            "HTML": STRING,
            "Size": described(COUNT, "Bytes"),
            "Inline": array(schema("Attachment")),
            "Attachments": array(schema("Attachment")),
        }
    ),
    "MessageHeaders": {
        "type": "object",
        "description": "Each header's values, under its name as Go writes it (`Message-Id`)",
        "additionalProperties": STRINGS,
    },
    "AppInformation": obj(
        {
            "Version": described(STRING, "mxrelay's version, starting with `v`"),
            "LatestVersion": described(STRING, "Not looked up: the relay never calls out"),
            "Database": described(STRING, "The database URL, its password removed"),
            "DatabaseSize": described(COUNT, "Bytes"),
            "Messages": COUNT,
            "Unread": COUNT,
            "Tags": {"type": "object", "additionalProperties": COUNT},
            "RuntimeStats": obj(
                {
                    "Uptime": described({"type": "number", "minimum": 0}, "Seconds"),
                    "Memory": described(COUNT, "Bytes"),
                    "MessagesDeleted": COUNT,
                    "SMTPAccepted": COUNT,
                    "SMTPAcceptedSize": COUNT,
                    "SMTPRejected": COUNT,
                    "SMTPIgnored": COUNT,
                }
            ),
        }
    ),
    "WebUIConfiguration": obj(
        {
            "Label": STRING,
            "MessageRelay": obj(
                {
                    "Enabled": described(BOOLEAN, "Whether release is possible"),
                    "SMTPServer": STRING,
                    "ReturnPath": STRING,
                    "AllowedRecipients": STRING,
                    "BlockedRecipients": STRING,
                    "OverrideFrom": STRING,
                    "PreserveMessageIDs": BOOLEAN,
                    "RecipientAllowlist": {**STRING, "deprecated": True},
                }
            ),
            "SpamAssassin": BOOLEAN,
            "ChaosEnabled": BOOLEAN,
            "DuplicatesIgnored": BOOLEAN,
            "HideDeleteAllButton": BOOLEAN,
        }
    ),
    "SendAddress": request_obj({"Email": STRING, "Name": STRING}, required=["Email"]),
    "SendAttachment": request_obj(
        {
            "Content": described(STRING, "Base64 (a `data:` URL prefix is ignored)"),
            "Filename": STRING,
            "ContentType": described(STRING, "Detected from the content when empty"),
            "ContentID": described(STRING, "Makes the part inline"),
        },
        required=["Content", "Filename"],
    ),
    "SendRequest": {
        **request_obj(
            {
                "From": schema("SendAddress"),
                "To": array(schema("SendAddress")),
                "Cc": array(schema("SendAddress")),
                "Bcc": described(STRINGS, "Addresses only"),
                "ReplyTo": array(schema("SendAddress")),
                "Subject": STRING,
                "Text": STRING,
                "HTML": STRING,
                "Attachments": array(schema("SendAttachment")),
                "Headers": {"type": "object", "additionalProperties": STRING},
                "Tags": STRINGS,
            },
            required=["From"],
        ),
        "description": "Keys are matched whatever their case (`FileName` is `Filename`)",
    },
    "SendConfirmation": obj({"ID": described(STRING, "Database ID of the new message")}),
    "JSONError": obj({"Error": STRING}),
}

OWN: dict[str, Json] = {
    "DeliveryRecipient": obj(
        {
            "Variant": described(COUNT, "Which copy of the message (transforms may make several)"),
            "Address": STRING,
            "State": STRING,
            "Attempts": COUNT,
            "Code": nullable({"type": "integer"}),
            "EnhancedStatus": nullable(STRING),
            "Text": nullable(STRING),
        }
    ),
    "DeliveryAttempt": obj(
        {
            "Variant": COUNT,
            "Attempt": COUNT,
            "Started": TIMESTAMP,
            "Duration": described({"type": "number", "minimum": 0}, "Seconds"),
            "Transport": STRING,
            "Outcome": STRING,
            "Code": nullable({"type": "integer"}),
            "EnhancedStatus": nullable(STRING),
            "Text": nullable(STRING),
            "RemoteID": nullable(STRING),
            "HTTPStatus": nullable({"type": "integer"}),
            "ErrorCode": nullable(STRING),
        }
    ),
    "Deliveries": obj(
        {
            "Recipients": array(schema("DeliveryRecipient")),
            "Attempts": array(schema("DeliveryAttempt")),
            "Transforms": described(STRINGS, "The transforms applied"),
            "TransformReports": described(STRINGS, "What they did, or left and why"),
            "ReleasedFrom": described(nullable(STRING), "The original of a released copy"),
        }
    ),
    "QueueSummary": obj(
        {
            "States": obj({state.value: COUNT for state in QueueState}),
            "OldestAge": described(
                nullable({"type": "number", "minimum": 0}), "Seconds the oldest entry has waited"
            ),
            "Lanes": array(
                obj(
                    {
                        "Lane": described(STRING, "The sending mailbox ('' for the app)"),
                        "State": described({}, "The lane's pacing state, as Graph's keeps it"),
                        "Updated": TIMESTAMP,
                    }
                )
            ),
            "Faults": array(obj({"Condition": STRING, "Detail": STRING})),
        }
    ),
    "QueueAction": obj(
        {
            "ID": STRING,
            "Action": {"type": "string", "enum": ["retry", "hold", "resume", "cancel"]},
            "Changed": described(COUNT, "Entries changed (0: none was in a state it applies to)"),
        }
    ),
    "QueueActions": obj(
        {
            "Action": {"type": "string", "enum": ["retry", "hold", "resume", "cancel"]},
            "Changed": described(COUNT, "Entries changed, all messages together"),
            "Messages": array(schema("QueueAction")),
        }
    ),
    "Refusal": obj(
        {
            "ID": {"type": "integer"},
            "Time": TIMESTAMP,
            "Recipient": STRING,
            "Sender": STRING,
            "Client": STRING,
            "Helo": STRING,
            "Username": STRING,
            "Code": {"type": "integer"},
            "EnhancedStatus": STRING,
            "Text": STRING,
            "Reason": STRING,
        }
    ),
    "Refusals": obj({"Start": COUNT, "Count": COUNT, "Refusals": array(schema("Refusal"))}),
    "RefusedDomains": obj(
        {
            "Since": TIMESTAMP,
            "Until": TIMESTAMP,
            "Total": COUNT,
            "Domains": array(obj({"Domain": STRING, "Count": COUNT, "Last": TIMESTAMP})),
        }
    ),
    "AuditEntry": obj(
        {
            "ID": {"type": "integer"},
            "At": TIMESTAMP,
            "Actor": STRING,
            "Client": STRING,
            "Action": STRING,
            "Target": STRING,
            "Count": nullable({"type": "integer"}),
            "Outcome": STRING,
        }
    ),
    "AuditPage": obj(
        {
            "Total": COUNT,
            "Start": COUNT,
            "Count": COUNT,
            "Entries": array(schema("AuditEntry")),
        }
    ),
}
