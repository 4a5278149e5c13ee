"""Label values no stage has an enum for: what the SMTP engine, the recipient cache, passthrough,
the upstream pool, retention and the Graph client count by.

Stages pass these members to `.labels(...)`; the table in `__init__.py` creates every series from
them. Label values a stage already names (queue states, DNS statuses, Graph faults, ...) are
model.py's enums.
"""

from __future__ import annotations

import enum

from mxrelay.model import Reply


class ConnectionResult(enum.StrEnum):
    ACCEPTED = "accepted"
    DENIED = "denied"  # the session policy refused the client at connect
    LIMIT = "limit"  # a connection limit was reached
    SHUTDOWN = "shutdown"


class SessionEnd(enum.StrEnum):
    QUIT = "quit"
    DISCONNECT = "disconnect"
    TIMEOUT = "timeout"
    ERROR_LIMIT = "error_limit"
    BARE_NEWLINE = "bare_newline"
    SHUTDOWN = "shutdown"
    ERROR = "error"


class ReplyClass(enum.StrEnum):
    """What a reply said: a RCPT's verdict, a message's outcome."""

    ACCEPTED = "accepted"
    TEMPFAIL = "tempfail"
    REJECTED = "rejected"

    @classmethod
    def of(cls, reply: Reply) -> ReplyClass:
        if reply.is_positive:
            return cls.ACCEPTED
        return cls.TEMPFAIL if reply.is_transient else cls.REJECTED


class ProtocolError(enum.StrEnum):
    SYNTAX = "syntax"
    LINE_TOO_LONG = "line_too_long"
    BARE_LF = "bare_lf"
    SIZE = "size"
    AUTH = "auth"


class CacheResult(enum.StrEnum):
    HIT = "hit"
    MISS = "miss"
    STALE = "stale"
    COALESCED = "coalesced"


class PassthroughResult(enum.StrEnum):
    ACCEPTED = "accepted"
    TEMPFAIL = "tempfail"
    PERMFAIL = "permfail"
    UNAVAILABLE = "unavailable"


class UpstreamCommand(enum.StrEnum):
    CONNECT = "connect"
    MAIL = "mail"
    RCPT = "rcpt"
    RSET = "rset"
    DATA = "data"


class UpstreamConnection(enum.StrEnum):
    OPENED = "opened"
    REUSED = "reused"
    FAILED = "failed"


class PruneKind(enum.StrEnum):
    BODIES = "bodies"
    MESSAGES = "messages"
    REFUSALS = "refusals"
    AUDIT = "audit"


class GraphStatusClass(enum.StrEnum):
    SUCCESS = "2xx"
    REDIRECT = "3xx"  # counted when it happens, not created at start
    CLIENT_ERROR = "4xx"
    SERVER_ERROR = "5xx"
    TIMEOUT = "timeout"
    NETWORK = "network"

    @classmethod
    def of(cls, status: int) -> GraphStatusClass:
        """The class of an answer's status (above 5xx too, as the error table has it)."""
        classes = {2: cls.SUCCESS, 3: cls.REDIRECT, 4: cls.CLIENT_ERROR}
        return classes.get(status // 100, cls.SERVER_ERROR)


class GraphErrorCode(enum.StrEnum):
    """The Graph error codes counted by name; any other is `other`."""

    INVALID_AUTHENTICATION_TOKEN = "InvalidAuthenticationToken"
    ACCESS_DENIED = "ErrorAccessDenied"
    SEND_AS_DENIED = "ErrorSendAsDenied"
    INVALID_RECIPIENTS = "ErrorInvalidRecipients"
    INVALID_BASE64 = "ErrorMimeContentInvalidBase64String"
    MESSAGE_SIZE_EXCEEDED = "ErrorMessageSizeExceeded"
    INVALID_USER = "ErrorInvalidUser"
    OTHER = "other"

    @classmethod
    def of(cls, code: str) -> GraphErrorCode:
        known = {member.value: member for member in cls if member is not cls.OTHER}
        return known.get(code, cls.OTHER)


class GraphTokenSource(enum.StrEnum):
    CACHE = "cache"
    IDENTITY_PROVIDER = "identity_provider"


class GraphTokenFailure(enum.StrEnum):
    CONFIGURATION = "configuration"  # AADSTS errors
    UNAVAILABLE = "unavailable"  # the identity platform could not be reached
