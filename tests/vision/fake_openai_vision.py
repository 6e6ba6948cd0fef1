"""A local HTTP server that stands in for the OpenAI chat-completions API in the vision tests.

It is a real HTTP/1.1 server on 127.0.0.1, so the ``openai`` SDK runs its real transport,
request encoding and error mapping; only the answer is canned. Each request is recorded so the
tests can check what the backend sent (the inline image, the JSON response format).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Canned:
    status: int = 200
    content: str = "{}"
    delay_s: float = 0.0


@dataclass
class FakeOpenAI:
    canned: Canned = field(default_factory=Canned)
    requests: list[dict[str, Any]] = field(default_factory=list)
    base_url: str = ""

    def completion(self) -> bytes:
        if self.canned.status != 200:
            body: dict[str, Any] = {
                "error": {"message": "scripted failure", "type": "server_error", "code": None}
            }
        else:
            body = {
                "id": "chatcmpl-vision-test",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "gpt-4o-test",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": self.canned.content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150},
            }
        return json.dumps(body).encode()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {
                k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append(
                {"method": method, "path": path, "headers": headers, "json": json.loads(body)}
            )
            if self.canned.delay_s:
                await asyncio.sleep(self.canned.delay_s)
            payload = self.completion()
            reason = "OK" if self.canned.status == 200 else "Error"
            writer.write(
                f"HTTP/1.1 {self.canned.status} {reason}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client gave up (timeout tests): nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@asynccontextmanager
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    fake = FakeOpenAI()
    server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fake.base_url = f"http://127.0.0.1:{port}/v1"
    try:
        yield fake
    finally:
        server.close()
        await server.wait_closed()
