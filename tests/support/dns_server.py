"""A real DNS server for tests: dnslib packets over UDP and TCP on 127.0.0.1, same port, port 0.

What it serves and which faults it can inject is `dns_zones.Zones`: example.net. and example.org.
zones answered like a recursive resolver would, SERVFAIL, REFUSED, FORMERR, NOTIMP, NXDOMAIN or
NODATA with or without SOA, no answer, late answers, TC=1 over UDP with the full answer over TCP (or
TCP closing), an unparsable reply, a CNAME left unfollowed; and a log of every query received.

The server runs its own event loop on a thread, so it serves blocking and asyncio clients alike.
Use it as the `dns_server` fixture, as a context manager, or standalone for benchmarks:

    python -m tests.support.dns_server --zone-file zones.txt [--port 5353]

where the zone file holds BIND-style records (`mx.example.net. 300 IN A 192.0.2.10`; `$TTL` and
`$ORIGIN` work; SOA records define further zones).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import cast

import pytest

from tests.support.dns_zones import CloseConnection, Fault, ReceivedQuery, Zones

__all__ = ["DnsServer", "Fault", "ReceivedQuery", "dns_server"]

LOOPBACK = "127.0.0.1"
_BIND_ATTEMPTS = 50
_START_TIMEOUT = 10.0


class DnsServer(Zones):
    """`Zones` served on 127.0.0.1 over UDP and TCP on one port."""

    def __init__(
        self,
        zones: Iterable[str] = ("example.net", "example.org"),
        *,
        soa_ttl: int = 300,
        soa_minimum: int = 60,
        port: int = 0,
    ) -> None:
        super().__init__(zones, soa_ttl=soa_ttl, soa_minimum=soa_minimum)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._failure: BaseException | None = None
        self._wanted_port = port
        self.port = 0

    @property
    def address(self) -> str:
        """`127.0.0.1:port`, the form MXRELAY_DNS_SERVERS takes."""
        return f"{LOOPBACK}:{self.port}"

    # --- serving -----------------------------------------------------------------------------

    def start(self) -> DnsServer:
        ready = threading.Event()
        self._thread = threading.Thread(
            target=self._serve, args=(ready,), name="test-dns-server", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            raise RuntimeError("the test DNS server did not start in time")
        if self._failure is not None:
            raise RuntimeError("the test DNS server could not start") from self._failure
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(_START_TIMEOUT)
        self._loop = self._thread = None

    def __enter__(self) -> DnsServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._bind())
        except BaseException as exc:  # reported to start() on the caller's thread
            self._failure = exc
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()

    async def _bind(self) -> None:
        """UDP on port 0, then TCP on the same port (retried if that port's TCP side is taken)."""
        loop = asyncio.get_running_loop()
        attempts = 1 if self._wanted_port else _BIND_ATTEMPTS
        for _ in range(attempts):
            udp, _protocol = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(LOOPBACK, self._wanted_port)
            )
            port = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._on_tcp, LOOPBACK, port)
            except OSError:
                udp.close()
                continue
            self._udp, self.port = udp, port
            return
        raise OSError("no port free for both UDP and TCP")

    async def _shutdown(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._tcp is not None:
            await self._tcp.wait_closed()
        if self._udp is not None:
            self._udp.close()
        await asyncio.sleep(0)  # let the transports' close callbacks run

    def _send_later(self, delay: float, send: Callable[[], None]) -> None:
        assert self._loop is not None
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            send()

        handle = self._loop.call_later(delay, fire)
        self._timers.add(handle)

    async def _on_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                reply, delay = self.respond(data, "tcp")
                if isinstance(reply, CloseConnection):
                    break
                if reply is None:
                    continue
                if delay:
                    await asyncio.sleep(delay)
                writer.write(len(reply).to_bytes(2, "big") + reply)
                await writer.drain()
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        reply, delay = self.server.respond(data, "udp")
        if not isinstance(reply, bytes) or self.transport is None:
            return
        transport = self.transport

        def send() -> None:
            if not transport.is_closing():
                transport.sendto(reply, addr)

        if delay:
            self.server._send_later(delay, send)
        else:
            send()


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    """A fresh server per test, zones example.net. and example.org., stopped afterwards."""
    with DnsServer() as server:
        yield server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve DNS test zones on 127.0.0.1.")
    parser.add_argument("--zone-file", type=Path, action="append", default=[])
    parser.add_argument("--port", type=int, default=0, help="default: any free port")
    parser.add_argument("--soa-minimum", type=int, default=60)
    args = parser.parse_args(argv)
    server = DnsServer(soa_minimum=args.soa_minimum, port=args.port)
    for path in args.zone_file:
        server.load(path.read_text(encoding="utf-8"))
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with server:
        sys.stdout.write(f"listening on {server.address} (udp and tcp)\n")
        sys.stdout.flush()
        stop.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
