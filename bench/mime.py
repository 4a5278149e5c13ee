"""MIME transforms: throughput on the calendar corpus and on a 10 MB message, and event-loop lag.

Three tables, each run three times in this process:

1. Throughput (MB/s and messages/s) over the corpus in tests/data/ics/ of the calendar strip, the
   calendar attach, and the To/Cc/Bcc reconciliation, beside the peer a naive implementation would
   use: the stdlib's `email` parse and re-serialization (which is not even byte-exact).
2. The same on one 10 MB message (an invitation with a 10 MB attachment).
3. The event loop's worst lag while a 20 MB message is transformed: a ticker sleeping 1 ms records
   how late it wakes; run once with the transform called inline on the loop and once through
   `split_variants_async`, which hands messages above `OFFLOAD_THRESHOLD` to a worker thread.
   The time to transform a message of exactly the threshold size shows what staying inline costs.
"""

from __future__ import annotations

import asyncio
import base64
import email.policy
import time
from collections.abc import Awaitable, Callable, Sequence
from email.parser import BytesParser
from pathlib import Path

from bench.figures import Row, format_table, ratio_line
from mxrelay.mime.headers import reconcile_headers
from mxrelay.mime.ics import transform_calendar
from mxrelay.mime.pipeline import OFFLOAD_THRESHOLD, IcsPolicy, split_variants, split_variants_async
from mxrelay.model import IcsAction, IcsScope

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "ics"
RUNS = 3
RUN_SECONDS = 0.5
LARGE = 10 * 1024 * 1024
HUGE = 20 * 1024 * 1024
TICK = 0.001
RECIPIENTS = ("alex@example.net", "new@example.org")
POLICY = IcsPolicy(IcsScope.from_setting(("all",)), IcsAction.STRIP)

Transform = Callable[[bytes], object]


def _stdlib_round_trip(data: bytes) -> object:
    return BytesParser(policy=email.policy.default).parsebytes(data).as_bytes()


TRANSFORMS: tuple[tuple[str, Transform], ...] = (
    ("ics strip", lambda data: transform_calendar(data, IcsAction.STRIP)),
    ("ics attach", lambda data: transform_calendar(data, IcsAction.ATTACH)),
    ("headers (Graph)", lambda data: reconcile_headers(data, RECIPIENTS)),
    ("peer: stdlib parse + as_bytes", _stdlib_round_trip),
)


def corpus() -> list[bytes]:
    return [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]


def large_message(size: int) -> bytes:
    """A Google-style invitation with an attachment bringing it to about `size` bytes."""
    invitation = (CORPUS / "python-google-request.eml").read_bytes()
    boundary = b"----=_Part_googlerequest_0"
    blob = base64.encodebytes(bytes(range(256)) * (size * 3 // 4 // 256)).replace(b"\n", b"\r\n")
    part = (
        b"--" + boundary + b"\r\n"
        b"Content-Type: application/pdf; name=big.pdf\r\n"
        b"Content-Disposition: attachment; filename=big.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + blob
    )
    close = b"--" + boundary + b"--"
    at = invitation.rindex(close)
    return invitation[:at] + part + invitation[at:]


def measure(fn: Transform, messages: Sequence[bytes]) -> tuple[float, float]:
    """(MB/s, messages/s) of `fn` over `messages`, repeated for about RUN_SECONDS."""
    done_bytes = done = 0
    start = time.perf_counter()
    while True:
        for message in messages:
            fn(message)
            done_bytes += len(message)
            done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= RUN_SECONDS:
            return done_bytes / elapsed / 1e6, done / elapsed


def throughput(title: str, messages: Sequence[bytes]) -> None:
    mb_rows: list[Row] = []
    rate_rows: list[Row] = []
    for label, fn in TRANSFORMS:
        runs = [measure(fn, messages) for _ in range(RUNS)]
        mb_rows.append(Row(label, tuple(mb for mb, _ in runs)))
        rate_rows.append(Row(label, tuple(rate for _, rate in runs)))
    peer = mb_rows[-1]
    ratios = [ratio_line(f"{row.label} / stdlib", row, peer) for row in mb_rows[:-1]]
    size = sum(len(m) for m in messages)
    print(format_table(f"{title}, {len(messages)} messages, {size} bytes", "MB/s", mb_rows, ratios))
    print(format_table(title, "messages/s", rate_rows))
    print()


async def _worst_lag(work: Callable[[], Awaitable[object]]) -> float:
    """Await `work()` while a 1 ms ticker measures how late it wakes."""
    worst = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal worst
        while not stop.is_set():
            before = time.perf_counter()
            await asyncio.sleep(TICK)
            worst = max(worst, time.perf_counter() - before - TICK)

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)  # the ticker is running
    await work()
    await asyncio.sleep(0.05)
    stop.set()
    await task
    return worst * 1000


async def loop_lag() -> None:
    message = large_message(HUGE)
    recipients = ["alex@example.net"]

    async def inline() -> None:
        split_variants(message, recipients, POLICY)

    async def offloaded() -> None:
        await split_variants_async(message, recipients, POLICY)

    rows: dict[str, list[float]] = {
        "idle (ticker alone)": [],
        "inline on the loop": [],
        "split_variants_async": [],
    }
    for _ in range(RUNS):
        rows["idle (ticker alone)"].append(await _worst_lag(lambda: asyncio.sleep(0.2)))
        rows["inline on the loop"].append(await _worst_lag(inline))
        rows["split_variants_async"].append(await _worst_lag(offloaded))
    table = [Row(label, tuple(values)) for label, values in rows.items()]
    size_mb = len(message) / 1e6
    print(
        format_table(
            f"worst event-loop lag while a {size_mb:.1f} MB message is stripped", "ms", table
        )
    )
    threshold = large_message(OFFLOAD_THRESHOLD)
    start = time.perf_counter()
    for _ in range(50):
        split_variants(threshold, recipients, POLICY)
    each = (time.perf_counter() - start) / 50 * 1000
    print(
        f"inline cost at the offload threshold ({len(threshold)} bytes): {each:.2f} ms per message"
    )
    print()


def run() -> None:
    throughput("corpus", corpus())
    throughput("10 MB invitation", [large_message(LARGE)])
    asyncio.run(loop_lag())


if __name__ == "__main__":
    run()
