"""``wastecoach``: serve, run a worker, scan a photo, migrate, import data, evaluate, load-test."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI

from protocol.messages import MAX_FRAME_BYTES

if TYPE_CHECKING:
    from server.settings import Settings

#: Kernel send buffer of every accepted socket. Left to autotuning, Linux lets one socket buffer
#: megabytes for a client that stopped reading, and the server would count all of it as taken;
#: bounded, the WebSocket writer blocks soon, and the slow client is seen and closed with 1013
#: while its history still holds what it missed (server.ws.connection).
SEND_BUFFER_BYTES = 64 * 1024


class GracefulServer(uvicorn.Server):
    """uvicorn closes WebSockets with 1012 at once on shutdown, dropping queued events; this
    first lets every session flush what it has and close with 1012 itself. It also bounds the
    kernel send buffer of every connection (:data:`SEND_BUFFER_BYTES`)."""

    def __init__(
        self, config: uvicorn.Config, app: FastAPI, *, send_buffer: int = SEND_BUFFER_BYTES
    ) -> None:
        super().__init__(config)
        self._app = app
        self._send_buffer = send_buffer

    def run(self, sockets: list[socket.socket] | None = None) -> None:
        if sockets is None and self.config.fd is None and self.config.uds is None:
            listener = self.config.bind_socket()
            # Accepted sockets inherit the listener's SO_SNDBUF on Linux (and setting it turns
            # off autotuning for them).
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self._send_buffer)
            sockets = [listener]
        super().run(sockets=sockets)

    async def shutdown(self, sockets: Any = None) -> None:
        state = self._app.state
        connections = getattr(state, "connections", None)
        container = getattr(state, "container", None)
        if connections is not None and container is not None:
            # Stop taking connections first, so nobody connects to a draining server.
            for server in getattr(self, "servers", []):
                server.close()
            await connections.drain(container.runner)
        await super().shutdown(sockets=sockets)


class _StripQuery(logging.Filter):
    """The access log must not keep OAuth codes, states or upload signatures from query
    strings; the path is enough to operate the service."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def serve_settings(args: argparse.Namespace) -> Settings:
    """The settings with ``--host`` and ``--port`` in place of the environment's, so that what
    derives from them (the public URL of upload links, when WASTECOACH_PUBLIC_URL is unset)
    follows the flags too, not only the listening socket."""
    from server.settings import get_settings

    overrides: dict[str, Any] = {}
    if args.host:
        overrides["host"] = args.host
    if args.port:
        overrides["port"] = args.port
    return get_settings().model_copy(update=overrides)


def server_config(settings: Settings, app: FastAPI) -> uvicorn.Config:
    """How ``serve`` runs ``app`` under uvicorn."""
    from server.request_heads import head_deadline_protocol
    from server.ws_inbound import budgeted_websocket_protocol

    return uvicorn.Config(
        app,
        # uvicorn's own HTTP protocol, but a request head has a deadline, and connections
        # still sending one are capped per address and in all (slow loris).
        http=head_deadline_protocol(settings.http, settings.trusted_proxies),
        # uvicorn's WebSocket protocol, but the bytes of unfinished messages are budgeted per
        # address and in all (a half-sent frame is buffered before any check of ours).
        ws=budgeted_websocket_protocol(settings.http, settings.trusted_proxies),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        ws_ping_interval=settings.session.heartbeat_interval_s,
        ws_ping_timeout=settings.session.heartbeat_interval_s,
        ws_max_size=MAX_FRAME_BYTES,
        # permessage-deflate costs ~64 KiB of zlib state per connection; camera frames are
        # already compressed JPEG. Off by default for many idle mobile clients.
        ws_per_message_deflate=False,
        timeout_graceful_shutdown=15,
        # The client address in the ASGI scope (what per-address limits count) comes from
        # X-Forwarded-For only when the peer is one of these.
        proxy_headers=True,
        forwarded_allow_ips=settings.trusted_proxies,
    )


def serve(args: argparse.Namespace) -> int:
    from server.app import create_app

    settings = serve_settings(args)
    app = create_app(settings)
    config = server_config(settings, app)
    server = GracefulServer(config, app)
    logging.getLogger("uvicorn.access").addFilter(_StripQuery())
    server.run()
    return 0


def worker(args: argparse.Namespace) -> int:
    from server.metrics import serve as serve_metrics
    from server.settings import QueueType, get_settings
    from workers.tasks import make_worker_app

    settings = get_settings()
    app = make_worker_app(
        settings.broker_url,
        settings.celery_queue,
        quorum=settings.celery_queue_type is QueueType.QUORUM,
    )
    # Started before Celery: its HTTP thread lives as long as the process (the loop pool
    # runs every task in this process, so one registry holds every figure; server.metrics).
    serve_metrics(settings.metrics_port)

    argv = [
        "worker",
        "--loglevel",
        args.loglevel,
        "--concurrency",
        str(args.concurrency),
        "--without-gossip",
        "--without-mingle",
    ]
    # Celery's default node name is celery@<host>, and its remote-control queue is exclusive to
    # that name: a second worker on the same host (the capacity bench, N workers under one
    # systemd or one container) was refused that queue, restarted its consumer in a loop and
    # never took a task, while the first took them all. One name per process avoids it.
    argv += ["--hostname", args.hostname or f"wastecoach-{os.getpid()}@%h"]
    app.worker_main(argv)
    return 0


def migrate(_: argparse.Namespace) -> int:
    from server.migrate import upgrade
    from server.settings import get_settings

    upgrade(get_settings().sqlalchemy_url)
    print("database is at the latest revision")
    return 0


def scan(args: argparse.Namespace) -> int:
    from server.scan_cli import scan_photo

    return asyncio.run(scan_photo(Path(args.photo), args))


def eval_(args: argparse.Namespace) -> int:
    if args.what == "vision":
        from server.vision.eval import main as vision_main

        return vision_main(args.rest)
    if args.what == "chat":
        from server.coach.eval import main as chat_main

        return chat_main(args.rest)
    from server.coach.eval import main as chat_main
    from server.knowledge.eval import main as coach_main

    # The coach's report (issue 15): item search, then chat answers and scan coaching, each per
    # language. ``--chat-questions`` picks the chat set; ``--lexical-only`` applies to both.
    search_args, chat_args = _split_chat_args(args.rest)
    search_code = coach_main(search_args)
    print()
    return max(search_code, chat_main(chat_args))


def _split_chat_args(rest: list[str]) -> tuple[list[str], list[str]]:
    search: list[str] = []
    chat: list[str] = []
    items = iter(rest)
    for arg in items:
        if arg == "--chat-questions":
            chat += ["--questions", next(items, "")]
        elif arg.startswith("--chat-questions="):
            chat.append("--questions=" + arg.split("=", 1)[1])
        else:
            search.append(arg)
            if arg == "--lexical-only":
                chat.append(arg)
    return search, chat


def locations(args: argparse.Namespace) -> int:
    from server.locations.cli import main as locations_main

    return locations_main([args.action, *args.rest])


def loadtest(rest: list[str]) -> int:
    """Hands over to the load-test harness in a fresh process image: the harness runs Locust,
    which patches the standard library with gevent, and nothing of that may reach a process
    that also serves or runs workers (nor this one, whose imports it would inherit)."""
    os.execv(sys.executable, [sys.executable, "-m", "server.loadtest", *rest])


#: Threads OpenBLAS (numpy's matrix products) may use, unless the operator set their own.
BLAS_THREADS = "1"


def one_blas_thread() -> None:
    """Keep numpy's OpenBLAS to one thread in this process and the processes it starts.

    numpy only multiplies small matrices here (the vision head: one photo's features at a time),
    where a second BLAS thread saves nothing, and OpenBLAS's idle threads spin waiting for the
    next product: in the server the spare one burned 11 ms of CPU a scan (classifying a photo
    takes about 13), on the cores the classifier needs ("Where a scan's CPU goes" in
    docs/benchmarks.md). OpenBLAS reads the variable once, when numpy is first imported, so
    this runs before anything that imports numpy (importing this module does not)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", BLAS_THREADS)


def main(argv: list[str] | None = None) -> int:
    one_blas_thread()
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["loadtest"]:
        # Every option after it is the harness's own (`wastecoach loadtest --help`).
        return loadtest(given[1:])
    parser = argparse.ArgumentParser(prog="wastecoach", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the server (embedded by default)")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.set_defaults(func=serve)

    p = sub.add_parser("worker", help="run a Celery worker (distributed mode)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--loglevel", default="info")
    p.add_argument("--hostname")
    p.set_defaults(func=worker)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=migrate)

    p = sub.add_parser("scan", help="scan one photo from the terminal and print the stream")
    p.add_argument("photo")
    p.add_argument("--locale", default="ko", choices=["ko", "en"])
    p.add_argument("--lat", type=float)
    p.add_argument("--lon", type=float)
    p.add_argument("--json", action="store_true", help="print raw events")
    p.set_defaults(func=scan)

    p = sub.add_parser("eval", help="evaluate the vision model, the coach's search or its chat")
    p.add_argument("what", choices=["vision", "coach", "chat"])
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=eval_)

    p = sub.add_parser("locations", help="collection points")
    p.add_argument("action", choices=["import"])
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=locations)

    p = sub.add_parser(
        "loadtest",
        add_help=False,
        help="load-test a server with simulated app users (Locust; see --help)",
    )
    p.add_argument("rest", nargs=argparse.REMAINDER)

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("WASTECOACH_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    # Migration chatter on every embedded start says nothing an operator needs.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
