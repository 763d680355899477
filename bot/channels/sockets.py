"""httpx's transport on asyncio's own sockets, for the platforms' APIs.

httpx's default transport reaches the network through anyio. Each time a request starts or ends,
httpcore asks every pooled connection whether its server has closed it; anyio answers with two system
calls (`getpeername`, `poll`) per connection, and wraps every read and write in a cancel scope. At a
few hundred requests a second that was a quarter of the event loop (bench/interactive_bench.py).
Here each connection is an `asyncio.Protocol`: the event loop already reads its socket, so "has the
server closed it?" is an attribute, and a time-out is `asyncio.timeout`.

This is httpcore's documented extension point (a network backend); the connection pool, HTTP/1.1,
TLS and httpx's errors are theirs. With a proxy in the environment (HTTPS_PROXY, ALL_PROXY) the
connections go through httpx's own proxy transport instead.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.request
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

# Bytes kept from a socket before reading from it pauses (a file download is read as it comes).
READ_AHEAD = 1 << 18
HELD = 1 << 16  # bytes of a request written together (`Stream.write`); an upload goes out in parts


class Wire(asyncio.Protocol):
    """One connection's incoming bytes, kept until read; its end; and its write buffer's pressure."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.ended = False  # the server closed its side, or the connection is lost
        self.error: Exception | None = None
        self.waiting: asyncio.Future[None] | None = None  # a read waiting for bytes
        self.draining: asyncio.Future[None] | None = None  # a write waiting for the buffer to drain
        self.paused = False  # reading paused: READ_AHEAD bytes unread

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Connected."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Keep the bytes; pause reading past READ_AHEAD."""
        self.buffer += data
        if len(self.buffer) > READ_AHEAD and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        """The server closed its side: reads return what is left, then b''."""
        self.ended = True
        self._wake_reader()
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        """Gone: wake whoever waits."""
        self.ended = True
        self.error = exc
        self._wake_reader()
        if self.draining is not None and not self.draining.done():
            self.draining.set_result(None)

    def pause_writing(self) -> None:
        """The write buffer is full: writes wait for it to drain."""
        if self.draining is None or self.draining.done():
            self.draining = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        """Drained."""
        if self.draining is not None and not self.draining.done():
            self.draining.set_result(None)

    def _wake_reader(self) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(None)

    def take(self, most: int) -> bytes:
        """Up to `most` bytes of what came in."""
        data = bytes(self.buffer[:most])
        del self.buffer[:most]
        if self.paused and len(self.buffer) <= READ_AHEAD // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return data


class Stream(httpcore.AsyncNetworkStream):
    """httpcore's view of a `Wire`."""

    def __init__(self, transport: asyncio.Transport, wire: Wire) -> None:
        self.transport = transport
        self.wire = wire
        self.held = bytearray()  # a request's head, held to go out with its body (`write`)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """What came in (up to max_bytes), waiting for it at most `timeout` seconds; b'' at the end."""
        if self.held:
            await self.flush(timeout)
        wire = self.wire
        if not wire.buffer and not wire.ended:
            wire.waiting = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await wire.waiting
            except TimeoutError as exc:
                raise httpcore.ReadTimeout(f"no answer within {timeout} s") from exc
            finally:
                wire.waiting = None
        if wire.buffer:
            return wire.take(max_bytes)
        if wire.error is not None:
            raise httpcore.ReadError(str(wire.error) or type(wire.error).__name__)
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Hand the bytes to the socket; wait (at most `timeout` seconds) while its buffer is full.

        Small writes are held until the answer is read or HELD bytes have gathered: httpcore writes a
        request's head and its body apart, and each write is a system call and a packet of its own."""
        if not buffer:
            return
        if self.transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self.held += buffer
        if len(self.held) >= HELD:
            await self.flush(timeout)

    async def flush(self, timeout: float | None = None) -> None:
        """What `write` holds, to the socket."""
        data, self.held = bytes(self.held), bytearray()
        if self.transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        self.transport.write(data)
        draining = self.wire.draining
        if draining is not None and not draining.done():
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(draining)
            except TimeoutError as exc:
                raise httpcore.WriteTimeout(f"could not send within {timeout} s") from exc
        if self.wire.error is not None:
            raise httpcore.WriteError(str(self.wire.error) or type(self.wire.error).__name__)

    async def aclose(self) -> None:
        """Close the connection: gracefully if it can within one turn of the loop (a write still
        buffered for a server that stopped reading would keep it open forever), else at once."""
        if not self.transport.is_closing():
            self.transport.close()
            await asyncio.sleep(0)
        self.transport.abort()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        """The same connection, encrypted."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(
                    self.transport, self.wire, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError as exc:
            self.transport.close()
            raise httpcore.ConnectTimeout(f"no TLS handshake within {timeout} s") from exc
        except (OSError, ssl.SSLError) as exc:
            self.transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if tls is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        assert isinstance(tls, asyncio.Transport)
        self.wire.transport = tls
        return Stream(tls, self.wire)

    def get_extra_info(self, info: str) -> Any:
        """What httpcore asks of a connection; "is_readable" (has the server closed it?) costs nothing."""
        if info == "is_readable":
            return self.wire.ended or bool(self.wire.buffer)
        key = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername"}
        return self.transport.get_extra_info(key.get(info, info))


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    """Connections as `asyncio.Protocol`s (TCP_NODELAY is asyncio's default)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """A TCP connection to host:port."""
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                transport, wire = await loop.create_connection(Wire, host, port, local_addr=local)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"no connection to {host}:{port} within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return Stream(transport, wire)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        """A connection to a Unix socket."""
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, wire = await loop.create_unix_connection(Wire, path)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"no connection to {path} within {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        return Stream(transport, wire)

    async def sleep(self, seconds: float) -> None:
        """Wait."""
        await asyncio.sleep(seconds)


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY; NO_PROXY)."""
    parsed = httpx.URL(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parsed.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parsed.host):
        return None
    return proxy


def transport(
    url: str, limits: httpx.Limits, verify: ssl.SSLContext | bool = True
) -> httpx.AsyncHTTPTransport:
    """httpx's HTTP/1.1 transport to `url`'s server, on `AsyncioBackend` (through the environment's
    proxy, if it names one, on httpx's own)."""
    proxy = environment_proxy(url)
    tls = verify if isinstance(verify, ssl.SSLContext) else httpx.create_ssl_context(verify=verify)
    made = httpx.AsyncHTTPTransport(verify=tls, limits=limits, proxy=proxy)
    if proxy is None:
        made._pool = Shards(tls, limits)  # type: ignore[assignment]
    return made


SHARD = 16  # connections a pool holds at most (`Shards`)


class Shards:
    """httpcore's pools (the one httpx builds, on `AsyncioBackend`), each of at most SHARD connections,
    a request going to the one with the fewest requests in hand. A pool looks over all its connections
    each time a request starts or ends (closed? expired? idle?): with 64 connections that was 13 % of
    the time the bot held the GIL at 08:00 (bench/RESULTS.md, session 9); with 16 a quarter of it.
    Taken together the pools open no more than `limits` allows, and a request waits for a connection
    only when every pool is full."""

    def __init__(self, tls: ssl.SSLContext, limits: httpx.Limits) -> None:
        most = limits.max_connections or SHARD
        count = -(-most // SHARD)
        kept = limits.max_keepalive_connections
        self.pools = [
            httpcore.AsyncConnectionPool(
                ssl_context=tls,
                max_connections=most // count + (1 if index < most % count else 0),
                max_keepalive_connections=None if kept is None else -(-kept // count),
                keepalive_expiry=limits.keepalive_expiry,
                network_backend=AsyncioBackend(),
            )
            for index in range(count)
        ]
        self.busy = [0] * count  # requests in hand in each pool, until their answer is closed

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        """The request, on the pool with the fewest in hand."""
        index = min(range(len(self.pools)), key=self.busy.__getitem__)
        self.busy[index] += 1
        try:
            response = await self.pools[index].handle_async_request(request)
        except BaseException:
            self.busy[index] -= 1
            raise
        response.stream = Counted(response.stream, self, index)
        return response

    @property
    def connections(self) -> list[httpcore.AsyncConnectionInterface]:
        """Every pool's connections."""
        return [c for pool in self.pools for c in pool.connections]

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()

    async def __aenter__(self) -> Shards:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()


class Counted:
    """An answer's body, which lets its pool count the request done when it is closed (once)."""

    def __init__(self, stream: Any, shards: Shards, index: int) -> None:
        self.stream = stream
        self.shards = shards
        self.index = index
        self.open = True

    async def __aiter__(self) -> Any:
        async for part in self.stream:
            yield part

    async def aclose(self) -> None:
        if self.open:
            self.open = False
            self.shards.busy[self.index] -= 1
        await self.stream.aclose()
