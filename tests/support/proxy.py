"""A TCP proxy that tests use to cut a real connection: the database or an RPC node
"goes away" for the client while the server itself stays up.

Runs its own event loop in a thread, so synchronous and asynchronous tests alike can
drive it. ``cut()`` closes every open connection abruptly; ``refuse()`` rejects new
ones until ``accept()``; ``retarget()`` sends new ones to another server.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.refusing = False
        self._loop = asyncio.new_event_loop()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> TcpProxy:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def _call(self, func: object) -> None:
        async def run() -> None:
            assert callable(func)
            func()

        asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def cut(self) -> None:
        """Abort every open connection, both directions."""
        def abort_all() -> None:
            for writer in list(self._writers):
                writer.transport.abort()
            self._writers.clear()
        self._call(abort_all)

    def refuse(self) -> None:
        """New connections are accepted and immediately reset; open ones are cut."""
        self.refusing = True
        self.cut()

    def accept(self) -> None:
        self.refusing = False

    def retarget(self, host: str, port: int) -> None:
        """New connections go to ``host:port`` (a failover's new primary); open ones stay."""
        self.target = (host, port)

    @property
    def open_connections(self) -> int:
        return len(self._writers) // 2

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            # Each connection's pipes end on the aborted transports: wait for them.
            piping = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            await asyncio.wait(piping, timeout=5) if piping else None

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextlib.contextmanager
def tcp_proxy(host: str, port: int) -> Iterator[TcpProxy]:
    proxy = TcpProxy(host, port).start()
    try:
        yield proxy
    finally:
        proxy.close()
