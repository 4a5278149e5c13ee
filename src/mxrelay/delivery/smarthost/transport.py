"""The SMTP smarthost transport (`MXRELAY_DELIVERY=smtp`): queued messages to `MXRELAY_UPSTREAM`.

One attempt is one SMTP transaction with aiosmtplib on a connection from the upstream pool
(`mxrelay.upstream`: configured TLS, credentials and timeouts, idle connections reused), whose
replies and errors it reads through `upstream.replies` and `upstream.errors`. The transport
reports per recipient, as Postfix's smtp client does for its queue manager:

- a recipient refused at RCPT with 4xx is deferred, with 5xx failed; the others go on;
- the reply to the end of DATA settles every recipient that RCPT accepted: 2xx delivered (the
  "queued as" id is kept as the remote id), 4xx deferred, 5xx failed;
- MAIL refused: every recipient takes that reply's class;
- a connection that cannot be opened, breaks or times out raises `UpstreamUnavailable` (the whole
  attempt is deferred). A pooled connection the server closed while idle is replaced once, before
  anything was sent.
"""

from __future__ import annotations

import asyncio

import aiosmtplib

from mxrelay.delivery.errors import PermanentFailure, UpstreamUnavailable
from mxrelay.delivery.transport import (
    DeliveryJob,
    DeliveryOutcome,
    RecipientOutcome,
    RecipientStatus,
)
from mxrelay.model import DeliveryMode
from mxrelay.upstream.errors import (
    UpstreamClosed,
    UpstreamError,
    UpstreamLost,
    UpstreamReplied,
    map_upstream_errors,
)
from mxrelay.upstream.pool import UpstreamPool
from mxrelay.upstream.replies import UpstreamReply, parse_reply, remote_id, send_data


def _status(code: int) -> RecipientStatus:
    if 200 <= code < 300:
        return RecipientStatus.DELIVERED
    return RecipientStatus.FAILED if code >= 500 else RecipientStatus.DEFERRED


def _outcome(recipient: str, reply: UpstreamReply) -> RecipientOutcome:
    return RecipientOutcome(recipient, _status(reply.code), reply.code, reply.enhanced, reply.text)


class _Stale(Exception):
    """The pooled connection was gone before anything was sent: open another one."""


class SmarthostTransport:
    """Delivers jobs to one smarthost; the `Transport` for `MXRELAY_DELIVERY=smtp`."""

    name = DeliveryMode.SMTP

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool

    async def probe(self) -> None:
        client = await self._acquire()
        self.pool.release(client, reusable=True)

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def _acquire(self) -> aiosmtplib.SMTP:
        try:
            return await self.pool.acquire()
        except UpstreamError as exc:
            raise UpstreamUnavailable(f"smarthost unreachable: {exc}") from None

    async def deliver(self, job: DeliveryJob) -> DeliveryOutcome:
        for _ in range(2):
            client = await self._acquire()
            try:
                return await self._transaction(client, job)
            except _Stale:
                continue  # `_transaction` discarded the dead connection; nothing was sent
        raise UpstreamUnavailable("smarthost closed the connection before MAIL")

    def _mail_options(self, client: aiosmtplib.SMTP, job: DeliveryJob) -> list[str]:
        options = []
        if client.supports_extension("size"):
            options.append(f"SIZE={len(job.data)}")
        if client.supports_extension("8bitmime") and not job.data.isascii():
            options.append("BODY=8BITMIME")
        if job.smtputf8:
            if not client.supports_extension("smtputf8"):
                raise PermanentFailure(
                    "the smarthost does not support SMTPUTF8, which this message needs", code=553
                )
            options.append("SMTPUTF8")
        return options

    async def _transaction(self, client: aiosmtplib.SMTP, job: DeliveryJob) -> DeliveryOutcome:
        reusable = False
        stage = "MAIL"
        try:
            with map_upstream_errors():
                mail = await self._mail(client, job)
                if mail.code != 250:
                    reusable = await _reset(client)
                    return _refused_at_mail(job, mail)
                stage = "RCPT"
                results, accepted = await self._rcpt(client, job)
                if not accepted:
                    reusable = await _reset(client)
                    return DeliveryOutcome(tuple(results[r] for r in job.recipients))
                stage = "DATA"
                reply = await send_data(client, job.data)
                reusable = True
                for recipient in accepted:
                    results[recipient] = _outcome(recipient, reply)
                return DeliveryOutcome(
                    tuple(results[r] for r in job.recipients),
                    remote_id=remote_id(reply.text) if reply.code < 300 else None,
                    detail=f"{reply.code} {reply.text}",
                )
        except UpstreamLost as exc:
            if stage == "MAIL" and isinstance(exc, UpstreamClosed):
                raise _Stale() from None
            raise UpstreamUnavailable(
                f"smarthost connection lost during {stage}: {exc.kind}"
            ) from None
        except UpstreamReplied as exc:
            # An unexpected reply where none of the above applies (EHLO, RSET): defer all.
            raise UpstreamUnavailable(f"smarthost replied {exc.code} during {stage}") from None
        except asyncio.CancelledError:
            # Cut off by the shutdown deadline in the middle of a command: the session's state is
            # unknown, so the connection is dropped rather than sent a QUIT (which could land in
            # the DATA, and waits for an answer the deadline has no time left for).
            client.close()
            raise
        finally:
            self.pool.release(client, reusable=reusable)

    async def _mail(self, client: aiosmtplib.SMTP, job: DeliveryJob) -> UpstreamReply:
        # MAIL and RCPT are sent with execute_command: the envelope addresses were checked when
        # they were accepted, and aiosmtplib's own mail()/rcpt() would re-parse each one with
        # email.utils (a large share of the CPU time of a delivery).
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        options = [o.encode("ascii") for o in self._mail_options(client, job)]
        sender = b"FROM:<" + job.mail_from.encode(_encoding(job)) + b">"
        response = await client.execute_command(b"MAIL", sender, *options)
        return parse_reply(response.code, response.message)

    async def _rcpt(
        self, client: aiosmtplib.SMTP, job: DeliveryJob
    ) -> tuple[dict[str, RecipientOutcome], list[str]]:
        """RCPT for each recipient: the outcomes of those refused, and those accepted."""
        refused: dict[str, RecipientOutcome] = {}
        accepted: list[str] = []
        encoding = _encoding(job)
        for recipient in job.recipients:
            response = await client.execute_command(
                b"RCPT", b"TO:<" + recipient.encode(encoding) + b">"
            )
            if response.code in (250, 251):
                accepted.append(recipient)
            else:
                refused[recipient] = _outcome(
                    recipient, parse_reply(response.code, response.message)
                )
        return refused, accepted


def _encoding(job: DeliveryJob) -> str:
    return "utf-8" if job.smtputf8 else "ascii"


def _refused_at_mail(job: DeliveryJob, reply: UpstreamReply) -> DeliveryOutcome:
    """MAIL refused: every recipient takes the reply."""
    return DeliveryOutcome(
        tuple(_outcome(r, reply) for r in job.recipients),
        detail=f"MAIL refused: {reply.code} {reply.text}",
    )


async def _reset(client: aiosmtplib.SMTP) -> bool:
    """RSET after a refused transaction; True if the connection can be reused."""
    try:
        with map_upstream_errors():
            await client.rset()
    except UpstreamError:
        return False
    return True
