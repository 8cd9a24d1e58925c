"""`RequestsOut` over a real socket: it tells when a request has been sent whole, before its
answer, so our own work can wait until the calls others wait for are on their way."""

from __future__ import annotations

import asyncio

import pytest

from koppel.connectors.base import ApiClient, ClientLimits
from koppel.connectors.requests_out import RequestsOut


class SlowServer:
    """An HTTP/1.1 server that reads each request whole and answers only when told to."""

    def __init__(self) -> None:
        self.received = asyncio.Event()
        self.answer = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> SlowServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        self.received.set()
        await self.answer.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()
        writer.close()


async def test_a_post_is_out_once_sent_whole_before_its_answer() -> None:
    async with SlowServer() as server:
        url = f"http://127.0.0.1:{server.port}"
        async with ApiClient(url, limits=ClientLimits(max_attempts=1)) as client:
            with RequestsOut() as out:
                post = asyncio.create_task(
                    client.send("POST", "/rows", kind="POST rows", json={"rows": ["x" * 50_000]})
                )
                await asyncio.wait_for(out.wait(), 30)
            assert server.received.is_set()
            assert not post.done(), "the watch waited for the answer, not for the request"
            server.answer.set()
            assert (await post).status_code == 200


async def test_work_that_made_no_request_is_out_when_it_ends() -> None:
    out = RequestsOut()
    with out:
        pass
    await asyncio.wait_for(out.wait(), 1)
    waiting = RequestsOut()
    with waiting:
        task = asyncio.ensure_future(waiting.wait())
        await asyncio.sleep(0)
        assert not task.done()  # nothing sent yet, and the work goes on
    await asyncio.wait_for(task, 1)


async def test_a_request_its_watch_refuses_is_never_sent() -> None:
    class TakenOver(Exception):
        pass

    def refuse() -> None:
        raise TakenOver("run run-1 was taken over")

    async with SlowServer() as server:
        url = f"http://127.0.0.1:{server.port}"
        async with ApiClient(url, limits=ClientLimits(max_attempts=1)) as client:
            with RequestsOut(before_each=refuse), pytest.raises(TakenOver):
                await client.send("POST", "/rows", kind="POST rows", json={"rows": []})
            assert client.calls.total == 0
            assert not server.received.is_set()
            server.answer.set()
            answered = await client.send("POST", "/rows", kind="POST rows", json={"rows": []})
            assert answered.status_code == 200  # outside the watch: sent
        assert server.received.is_set()
