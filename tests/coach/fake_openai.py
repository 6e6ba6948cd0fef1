"""A scripted HTTP server speaking the OpenAI chat-completions wire format, for failure paths.

The happy path is tested against a real llama-cpp-python server; what a real server will not
do on demand (answer 429, fail with 500, stall half way through a stream) is scripted here.
It is a real HTTP/1.1 server on a local port, so the ``openai`` SDK runs its real transport,
SSE parsing and error mapping.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


def sse_chunk(content: str, *, finish: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "scripted",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": finish}],
    }
    return f"data: {json.dumps(payload)}\n\n".encode()


def usage_chunk(usage: dict[str, int]) -> bytes:
    payload = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "scripted",
        "choices": [],
        "usage": {**usage, "total_tokens": sum(usage.values())},
    }
    return f"data: {json.dumps(payload)}\n\n".encode()


@dataclass
class Script:
    """One response: a status with a JSON error body, or an SSE stream of text pieces.

    ``stall_after`` stops sending (without closing) after that many pieces, like an upstream
    that hangs mid-answer.
    """

    status: int = 200
    error: dict[str, object] | None = None
    pieces: list[str] = field(default_factory=list)
    stall_after: int | None = None
    #: Token counts sent in a last chunk with no choices, as OpenAI does when the request
    #: asks for ``stream_options.include_usage``; None sends none (llama.cpp's server).
    usage: dict[str, int] | None = None
    requests: list[dict[str, object]] = field(default_factory=list)


async def _read_request(reader: asyncio.StreamReader) -> dict[str, object]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode("latin-1").split("\r\n"):
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    body = await reader.readexactly(length) if length else b"{}"
    parsed: dict[str, object] = json.loads(body)
    return parsed


@asynccontextmanager
async def scripted_server(script: Script) -> AsyncIterator[str]:
    writers: list[asyncio.StreamWriter] = []
    handlers: list[asyncio.Task[None]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        task = asyncio.current_task()
        if task is not None:
            handlers.append(task)
        try:
            script.requests.append(await _read_request(reader))
            if script.status != 200:
                body = json.dumps({"error": script.error or {"message": "scripted failure"}})
                writer.write(
                    f"HTTP/1.1 {script.status} Scripted\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}".encode()
                )
                await writer.drain()
                writer.close()
                return
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n"
            )
            for index, piece in enumerate(script.pieces):
                if script.stall_after is not None and index >= script.stall_after:
                    await asyncio.Event().wait()  # hang until the client gives up
                data = sse_chunk(piece)
                writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                await writer.drain()
            if script.usage is not None:
                data = usage_chunk(script.usage)
                writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            done = b"data: [DONE]\n\n"
            writer.write(f"{len(done):x}\r\n".encode() + done + b"\r\n0\r\n\r\n")
            await writer.drain()
            writer.close()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        # A stalled handler waits forever; cancel it so no task outlives the test's loop use.
        for handler in handlers:
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()
