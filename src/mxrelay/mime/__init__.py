"""Message transforms (iCalendar stripping, envelope-authoritative headers) and what the message
log shows of a message (its parts, fields, bodies and thumbnails, as Mailpit shows them): pure
functions."""
