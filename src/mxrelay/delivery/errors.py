"""Errors a transport may raise for a whole attempt (per-recipient results go in the outcome).

DeliveryError
├── TemporaryFailure          retry later with backoff
│   ├── Throttled             retry no sooner than `retry_after` (whole mailbox lane)
│   │   └── ThrottledBeforeSending   nothing was sent: not an attempt, never a dead letter
│   └── UpstreamUnavailable   connection refused, reset, timed out
├── PermanentFailure          dead letter now; never retried
└── ConfigurationFault        credentials/permissions: hold, raise an alarm, do not burn retries
"""

from __future__ import annotations

from datetime import timedelta


class DeliveryError(Exception):
    def __init__(
        self,
        detail: str,
        *,
        code: int | None = None,
        error_code: str | None = None,
        remote_id: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.error_code = error_code
        self.remote_id = remote_id


class TemporaryFailure(DeliveryError):
    pass


class Throttled(TemporaryFailure):
    def __init__(
        self,
        detail: str,
        *,
        retry_after: timedelta,
        code: int | None = None,
        error_code: str | None = None,
        remote_id: str | None = None,
    ) -> None:
        super().__init__(detail, code=code, error_code=error_code, remote_id=remote_id)
        self.retry_after = retry_after

    @property
    def attempted(self) -> bool:
        """Whether anything was sent before the throttle (False: see `ThrottledBeforeSending`)."""
        return True


class ThrottledBeforeSending(Throttled):
    """Raised before anything was sent (a pacing lane closed by an earlier Retry-After): the
    worker defers the entry to `retry_after` without counting or logging an attempt."""

    @property
    def attempted(self) -> bool:
        return False


class UpstreamUnavailable(TemporaryFailure):
    pass


class PermanentFailure(DeliveryError):
    pass


class ConfigurationFault(DeliveryError):
    pass
