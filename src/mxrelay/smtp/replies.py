"""Named SMTP replies used by the engine, the relay policy and the sinks (texts in Postfix's style).

Every reply the relay gives of its own lives here (the recipient check's verdicts carry theirs);
replies that depend on a name or a number are functions, the rest are constants. Wording that
DESIGN.md pins is spelled out literally in the tests, so editing a constant here cannot pass unseen.
"""

from __future__ import annotations

from mxrelay.model import Reply

# Connection
SERVICE_SHUTTING_DOWN = Reply(421, "3.2", "Service shutting down, closing transmission channel")
TOO_MANY_CONNECTIONS = Reply(421, "7.0", "Error: too many connections")
TOO_MANY_CONNECTIONS_FROM_YOU = Reply(421, "7.0", "Error: too many connections from your address")
TOO_MANY_ERRORS = Reply(421, "7.0", "Error: too many errors")
TIMEOUT = Reply(421, "4.2", "Error: timeout exceeded")
LOCAL_ERROR = Reply(451, "3.0", "Error: local error in processing, try again later")
BYE = Reply(221, "0.0", "Bye")


def greeting(hostname: str) -> Reply:
    return Reply(220, "", f"{hostname} ESMTP mxrelay")


def access_denied(client: str) -> Reply:
    return Reply(554, "7.1", f"<{client}>: Client host rejected: Access denied")


# Syntax and sequence
COMMAND_UNRECOGNIZED = Reply(500, "5.2", "Error: command not recognized")
LINE_TOO_LONG = Reply(500, "5.2", "Error: line too long")
BARE_LF_IN_COMMAND = Reply(500, "5.2", "Error: bare <LF> received")
COMMAND_NOT_IMPLEMENTED = Reply(502, "5.1", "Error: command not implemented")
NEED_HELO = Reply(503, "5.1", "Error: send HELO/EHLO first")
NEED_MAIL = Reply(503, "5.1", "Error: need MAIL command")
NESTED_MAIL = Reply(503, "5.1", "Error: nested MAIL command")
NEED_RCPT = Reply(503, "5.1", "Error: need RCPT command")
NO_VALID_RECIPIENTS = Reply(554, "5.1", "Error: no valid recipients")
ALREADY_TLS = Reply(503, "5.1", "Error: TLS already active")
ALREADY_AUTHENTICATED = Reply(503, "5.1", "Error: already authenticated")
TRANSACTION_IN_PROGRESS = Reply(503, "5.1", "Error: MAIL transaction in progress")
HELO_SYNTAX = Reply(501, "5.4", "Syntax: HELO hostname")
EHLO_SYNTAX = Reply(501, "5.4", "Syntax: EHLO hostname")
MAIL_SYNTAX = Reply(501, "5.4", "Syntax: MAIL FROM:<address>")
RCPT_SYNTAX = Reply(501, "5.4", "Syntax: RCPT TO:<address>")
VRFY_SYNTAX = Reply(501, "5.4", "Syntax: VRFY address")
NO_ARGUMENTS = Reply(501, "5.4", "Syntax error: no arguments allowed")
BAD_SENDER_SYNTAX = Reply(501, "1.7", "Bad sender address syntax")
SMTPUTF8_REQUIRED_SENDER = Reply(553, "6.7", "Must declare SMTPUTF8 to send unicode address")


def unsupported_parameter(name: str) -> Reply:
    return Reply(555, "5.4", f"Unsupported option: {name}")


def bad_parameter(name: str) -> Reply:
    return Reply(501, "5.4", f"Bad {name} parameter syntax")


# Limits
MESSAGE_TOO_BIG = Reply(552, "3.4", "Error: message file too big")
SIZE_EXCEEDS_LIMIT = Reply(552, "3.4", "Message size exceeds fixed limit")
TOO_MANY_RECIPIENTS = Reply(452, "5.3", "Error: too many recipients")
INSUFFICIENT_STORAGE = Reply(452, "3.1", "Error: insufficient system storage, try again later")
BARE_NEWLINE_IN_DATA = Reply(550, "5.2", "Error: bare <LF> or <CR> received in message data")

PROTOCOL_ERROR_CODES = frozenset({500, 501, 502, 503, 504, 535, 555})
"""Replies counted against MXRELAY_SMTP_ERROR_LIMIT whatever the command: a client's mistakes."""

# Senders
SENDER_NOT_ALLOWED = Reply(
    550, "7.1", "Sender address rejected: not allowed to send through this relay"
)

# After DATA: the store, or the upstream in passthrough mode
STORE_FAILED = Reply(451, "3.0", "Error: queue file write error, try again later")
UPSTREAM_UNAVAILABLE = Reply(451, "4.1", "Error: upstream server unavailable, try again later")
UPSTREAM_NO_SMTPUTF8 = Reply(553, "6.7", "Upstream server does not support SMTPUTF8")


def queued_as(queue_id: str) -> Reply:
    return Reply(250, "0.0", f"Ok: queued as {queue_id}")


# Positive
OK = Reply(250, "0.0", "Ok")
SENDER_OK = Reply(250, "1.0", "Ok")
RECIPIENT_OK = Reply(250, "1.5", "Ok")
START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
READY_FOR_TLS = Reply(220, "0.0", "Ready to start TLS")
CANNOT_VRFY = Reply(252, "0.0", "Cannot VRFY user, but will accept message and attempt delivery")
HELP = Reply(214, "0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA RSET NOOP QUIT VRFY")


def helo(hostname: str) -> Reply:
    return Reply(250, "", hostname)


# TLS and AUTH
AUTH_REQUIRED = Reply(530, "7.0", "Authentication required")
AUTH_NEEDS_TLS = Reply(538, "7.11", "Encryption required for requested authentication mechanism")
AUTH_NOT_ENABLED = Reply(503, "5.1", "Error: authentication not enabled")
AUTH_SUCCEEDED = Reply(235, "7.0", "Authentication successful")
AUTH_FAILED = Reply(535, "7.8", "Error: authentication failed")
AUTH_THROTTLED = Reply(454, "7.0", "Temporary authentication failure: too many failures, try later")
AUTH_BUSY = Reply(454, "7.0", "Temporary authentication failure, try again later")
AUTH_CANCELLED = Reply(501, "7.0", "Authentication aborted")
AUTH_BAD_MECHANISM = Reply(504, "5.4", "Unsupported authentication mechanism")
AUTH_BAD_BASE64 = Reply(501, "5.2", "Cannot decode response")
