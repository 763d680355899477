"""httpx's transport on asyncio's own sockets (bot.channels.sockets), and GatedRequest on it.

A small HTTP/1.1 server on 127.0.0.1, written here on asyncio's streams, plays the platform: it keeps
connections alive, closes them, answers late or never, reads slowly, sends large bodies, and speaks
TLS with a certificate of a test CA (tests/data/tls). The client side is the real httpx and PTB stacks.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpcore
import httpx
import pytest
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from bot.channels import sockets
from bot.channels.base import pool_limits
from bot.channels.telegram.api import GatedRequest

LIMITS = pool_limits(4)
TLS = Path(__file__).parents[1] / "data" / "tls"


@dataclass
class Request:
    method: str
    path: str
    body: bytes


Answer = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]  # False: close the connection


@dataclass
class Server:
    """What the test server saw."""

    url: str = ""
    connections: int = 0
    requests: list[Request] = field(default_factory=list)


async def ok(request: Request, writer: asyncio.StreamWriter, body: bytes = b'{"ok":true}') -> bool:
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    await writer.drain()
    return True


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, path, _ = lines[0].split(" ", 2)
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    return Request(method, path, await reader.readexactly(length) if length else b"")


Raw = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def serving(
    answer: Answer = ok, tls: ssl.SSLContext | None = None, raw: Raw | None = None
) -> AsyncIterator[Server]:
    """The test server on a free port until the block ends (`raw`: a connection handled by hand)."""
    seen = Server()
    handlers: set[asyncio.Task[None]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a connection is handled in a task of its own
        handlers.add(task)
        seen.connections += 1
        try:
            if raw is not None:
                await raw(reader, writer)
                return
            while (request := await read_request(reader)) is not None:
                seen.requests.append(request)
                if not await answer(request, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.transport.abort()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=tls)
    port = server.sockets[0].getsockname()[1]
    seen.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    try:
        yield seen
    finally:
        server.close()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


@asynccontextmanager
async def client(url: str, verify: ssl.SSLContext | bool = True) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=sockets.transport(url, LIMITS, verify), timeout=2.0) as c:
        yield c


async def test_requests_share_a_kept_alive_connection() -> None:
    async with serving() as server, client(server.url) as c:
        for n in range(5):
            response = await c.post(f"{server.url}/x", json={"n": n})
            assert response.json() == {"ok": True}
        together = await asyncio.gather(*(c.get(f"{server.url}/y") for _ in range(4)))

    assert [json.loads(r.body)["n"] for r in server.requests[:5]] == [0, 1, 2, 3, 4]
    assert all(r.status_code == 200 for r in together)
    assert server.connections <= 4  # the five in a row took one; the four at once at most four


async def test_connections_are_shared_out_among_small_pools_and_never_exceed_the_limit() -> None:
    """40 connections allowed: three pools (14, 13, 13). 40 requests at once all go at once, each on a
    connection of its own (a pool full while another has room would make one wait, and the server
    would see fewer at once); the 40 after them reuse those connections."""
    release = asyncio.Event()
    at_once = 0

    async def slow(request: Request, writer: asyncio.StreamWriter) -> bool:
        nonlocal at_once
        at_once += 1
        await release.wait()
        return await ok(request, writer)

    async with serving(slow) as server:
        made = sockets.transport(server.url, pool_limits(40), True)
        shards = made._pool
        assert isinstance(shards, sockets.Shards)
        assert [p._max_connections for p in shards.pools] == [14, 13, 13]
        async with httpx.AsyncClient(transport=made, timeout=5.0) as c:
            first = [asyncio.create_task(c.get(f"{server.url}/a")) for _ in range(40)]
            for _ in range(200):
                if at_once == 40:
                    break
                await asyncio.sleep(0.01)
            assert at_once == 40 and sum(shards.busy) == 40
            release.set()
            assert all(r.status_code == 200 for r in await asyncio.gather(*first))
            assert shards.busy == [0, 0, 0]
            again = await asyncio.gather(*(c.get(f"{server.url}/b") for _ in range(40)))
            assert all(r.status_code == 200 for r in again) and shards.busy == [0, 0, 0]
            assert server.connections == 40 and len(shards.connections) == 40


async def test_a_connection_the_server_closed_while_idle_is_not_used_again() -> None:
    async def once(request: Request, writer: asyncio.StreamWriter) -> bool:
        await ok(request, writer)
        return False  # then close, though the answer said nothing of it

    async with serving(once) as server, client(server.url) as c:
        first = await c.get(f"{server.url}/a")
        await asyncio.sleep(0.1)  # the close reaches the client's event loop
        second = await c.get(f"{server.url}/b")

    assert (first.status_code, second.status_code) == (200, 200)
    assert [r.path for r in server.requests] == ["/a", "/b"]
    assert server.connections == 2


async def test_a_large_answer_arrives_whole() -> None:
    body = bytes(range(256)) * (3 * sockets.READ_AHEAD // 256 + 7)  # past the read-ahead, three times

    async def large(request: Request, writer: asyncio.StreamWriter) -> bool:
        return await ok(request, writer, body)

    got = bytearray()
    async with (
        serving(large) as server,
        client(server.url) as c,
        c.stream("GET", f"{server.url}/file") as response,
    ):
        async for chunk in response.aiter_raw():
            got += chunk
            await asyncio.sleep(0)  # read slowly: the socket's reading pauses and resumes

    assert bytes(got) == body


async def test_a_large_upload_goes_whole() -> None:
    body = b"x" * (8 << 20)  # more than the socket buffers hold: the write waits for them to drain

    async with serving() as server, client(server.url) as c:
        response = await c.post(f"{server.url}/upload", content=body)

    assert response.status_code == 200
    assert server.requests[0].body == body


async def test_a_requests_head_waits_to_go_with_its_body_and_a_large_write_goes_at_once() -> None:
    arrived: asyncio.Queue[bytes] = asyncio.Queue()

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(1 << 20):
            await arrived.put(chunk)

    async with serving(raw=record) as server:
        port = int(server.url.rsplit(":", 1)[1])
        stream = await sockets.AsyncioBackend().connect_tcp("127.0.0.1", port, timeout=5)
        try:
            await stream.write(b"POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\n")  # as httpcore does:
            await stream.write(b"{}")  # the head, then the body
            for _ in range(10):  # several turns of the loop: nothing has gone yet
                await asyncio.sleep(0.005)
            assert arrived.empty()
            with pytest.raises(httpcore.ReadTimeout):  # reading sends what was held first
                await stream.read(100, timeout=0.05)
            request = b"POST /x HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"
            got = b""
            while len(got) < len(request):
                got += await asyncio.wait_for(arrived.get(), 5)
            assert got == request

            big = b"y" * sockets.HELD
            await stream.write(big)  # as much as HELD goes without waiting for a read
            received = b""
            while len(received) < len(big):
                received += await asyncio.wait_for(arrived.get(), 5)
            assert received == big
        finally:
            await stream.aclose()


async def test_an_answer_that_never_comes_is_a_read_timeout() -> None:
    async def never(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(3600)
        return False

    async with serving(never) as server, client(server.url) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.get(f"{server.url}/slow", timeout=0.2)


async def test_a_server_that_stops_reading_is_a_write_timeout() -> None:
    stalled = asyncio.Event()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalled.set()
        await asyncio.sleep(3600)

    async with serving(raw=stall) as server, client(server.url) as c:
        with pytest.raises(httpx.WriteTimeout):
            await c.post(f"{server.url}/upload", content=b"x" * (64 << 20), timeout=0.3)
    assert stalled.is_set()


async def test_a_server_that_hangs_up_mid_answer_is_an_error() -> None:
    async def half(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        return False

    async with serving(half) as server, client(server.url) as c:
        with pytest.raises(httpx.RemoteProtocolError):
            await c.get(f"{server.url}/cut")


async def test_no_server_is_a_connect_error() -> None:
    async with serving() as server:
        url = server.url  # its port, once closed, refuses
    async with client(url) as c:
        with pytest.raises(httpx.ConnectError):
            await c.get(f"{url}/")
        assert c._transport._pool.busy == [0]  # type: ignore[attr-defined]  # counted done all the same


async def test_tls_with_the_servers_certificate_checked() -> None:
    served = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    served.load_cert_chain(TLS / "server.pem", TLS / "server.key")
    trusting = ssl.create_default_context(cafile=TLS / "ca.pem")

    async with serving(tls=served) as server:
        async with client(server.url, trusting) as c:
            answers = [await c.get(f"{server.url}/secure/{n}") for n in range(3)]
        async with client(server.url) as untrusting:  # the system's CAs do not know the test CA
            with pytest.raises(httpx.ConnectError):
                await untrusting.get(f"{server.url}/secure")

    assert [a.json() for a in answers] == [{"ok": True}] * 3
    assert server.connections == 1  # one kept alive for the three (a refused handshake never begins one)
    assert [r.path for r in server.requests] == ["/secure/0", "/secure/1", "/secure/2"]


def test_a_proxy_in_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert sockets.environment_proxy("https://api.telegram.org/") == "http://proxy.example:3128"
    assert sockets.environment_proxy("https://127.0.0.1:8443/") is None
    assert sockets.environment_proxy("http://api.example/") is None  # only HTTPS_PROXY is set
    proxied = sockets.transport("https://api.telegram.org/", LIMITS)
    assert isinstance(proxied._pool, httpcore.AsyncHTTPProxy)


# ---- GatedRequest: PTB's requests on the transport ------------------------------------------------


async def test_ptb_calls_go_through_the_gated_request() -> None:
    me = {"id": 1, "is_bot": True, "first_name": "schoolbot", "username": "schoolbot_bot"}
    message = {"message_id": 7, "date": 0, "chat": {"id": 5, "type": "private"}, "text": "Kính gửi"}

    async def bot_api(request: Request, writer: asyncio.StreamWriter) -> bool:
        result = message if request.path.endswith("/sendMessage") else me
        return await ok(request, writer, json.dumps({"ok": True, "result": result}).encode())

    async with serving(bot_api) as server:
        request = GatedRequest(server.url, 2)
        async with Bot("1:secret", base_url=f"{server.url}/bot", request=request) as bot:
            assert (await bot.get_me()).username == "schoolbot_bot"
            assert (await bot.send_message(chat_id=5, text="Kính gửi")).message_id == 7

    sent = server.requests[-1]
    assert sent.path == "/bot1:secret/sendMessage"
    # PTB's parameters, as its form would carry them, in a JSON body (no percent-encoding)
    assert json.loads(sent.body) == {"chat_id": "5", "text": "Kính gửi"}
    assert "Kính gửi".encode() in sent.body
    with pytest.raises(RuntimeError):  # shut down with the bot
        await request.do_request(f"{server.url}/x", "GET")


async def test_gated_request_errors_are_ptbs() -> None:
    async def never(request: Request, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(3600)
        return False

    async with serving(never) as server:
        request = GatedRequest(server.url, 1, timeout=0.2)
        await request.initialize()
        try:
            with pytest.raises(TimedOut):
                await request.do_request(f"{server.url}/bot1:x/getMe", "POST")
        finally:
            await request.shutdown()
        gone = server.url
    refused = GatedRequest(gone, 1, timeout=0.5)
    await refused.initialize()
    try:
        with pytest.raises(NetworkError) as raised:
            await refused.do_request(f"{gone}/bot1:x/getMe", "POST")
    finally:
        await refused.shutdown()
    assert "ConnectError" in str(raised.value)
