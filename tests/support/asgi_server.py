"""An ASGI application under plain uvicorn on 127.0.0.1, configured as a test asks (another
websocket protocol, per-message deflate): a server other than the relay's `HttpServer`, for code
that must work under any ASGI server, or that the relay's server would not let a test reach."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from typing import Any

import uvicorn
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:  # the test runner's signals
        yield


@contextlib.asynccontextmanager
async def uvicorn_serving(app: ASGIApp, **config: Any) -> AsyncIterator[int]:
    """`app` served until the block ends; its port."""
    server = _Server(uvicorn.Config(app, log_config=None, lifespan="off", **config))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        try:
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
            yield int(sock.getsockname()[1])
        finally:
            server.should_exit = True
            await task
