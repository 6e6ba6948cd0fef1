"""The publisher: enqueues jobs for the workers, from the API process's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustConnection
from kombu.serialization import dumps
from kombu.utils.url import parse_url

from server.metrics import QUEUE_PUBLISH_FAILURES
from server.pipeline.jobs import ChatJob, ScanJob
from workers.app import CHAT_TASK, SCAN_TASK, make_celery

log = logging.getLogger(__name__)


class _BrokerConnection(aio_pika.RobustConnection):
    """A robust connection that closes itself when its first connect fails. Left open, the
    dropped object schedules its own close when garbage-collected, which fails (and warns)
    whenever that happens outside a running event loop."""

    async def connect(self, timeout: aio_pika.abc.TimeoutType = None) -> None:
        try:
            await super().connect(timeout)
        except BaseException:
            await self.close()
            raise


class CeleryRunner:
    """Enqueues Celery tasks on RabbitMQ from the event loop.

    The message is the one Celery itself would send (protocol 2, built by Celery's own
    ``as_task_v2``, JSON), published with aio-pika instead of kombu: kombu's publish blocks, so
    it needed a thread, and the hop to it and back cost more than the publish. The channel has
    publisher confirms and messages are ``mandatory`` and persistent, so ``submit`` returns
    only once RabbitMQ has the job in a queue, and raises otherwise (the scan then ends as
    failed and retryable, never silently lost). The connection is aio-pika's robust one: it
    reconnects after a broker restart and declares the queue again.
    """

    CONFIRM_TIMEOUT_S = 10.0

    def __init__(self, broker_url: str, queue: str, *, quorum: bool = False) -> None:
        self._app = make_celery(broker_url, queue, quorum=quorum)
        self._broker_url = broker_url
        self._queue = self._app.amqp.queues[queue]
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._opening = asyncio.Lock()

    async def submit(self, job: ScanJob) -> None:
        await self._send(SCAN_TASK, job.model_dump(mode="json"), f"scan {job.scan_id}",
                         f"{job.session_id}:{job.request_id}")

    async def submit_chat(self, job: ChatJob) -> None:
        await self._send(CHAT_TASK, job.model_dump(mode="json"), f"chat {job.request_id}",
                         f"{job.session_id}:{job.request_id}")

    async def _open(self) -> AbstractExchange:
        async with self._opening:
            if self._exchange is None:
                url = parse_url(self._broker_url)
                connection = await aio_pika.connect_robust(
                    host=url.get("hostname") or "localhost",
                    port=url.get("port") or 5672,
                    login=url.get("userid") or "guest",
                    password=url.get("password") or "guest",
                    virtualhost=url.get("virtual_host") or "/",
                    ssl=self._broker_url.startswith("amqps"),
                    client_properties={"connection_name": "wastecoach-server"},
                    connection_class=_BrokerConnection,
                    # Back within about a second of the broker (aio-pika waits 5 s by
                    # default, and every scan in between fails); a first connect that
                    # cannot be made fails this scan fast rather than holding its reader.
                    reconnect_interval=1,
                    timeout=3,
                )
                try:
                    channel = await connection.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                    # Declared exactly as Celery's worker declares them, so either may be first.
                    spec = self._queue
                    exchange = await channel.declare_exchange(
                        spec.exchange.name, spec.exchange.type, durable=spec.exchange.durable,
                        auto_delete=spec.exchange.auto_delete,
                    )
                    queue = await channel.declare_queue(
                        spec.name, durable=spec.durable, auto_delete=spec.auto_delete,
                        exclusive=spec.exclusive, arguments=spec.queue_arguments,
                    )
                    await queue.bind(exchange, spec.routing_key)
                except BaseException:
                    await connection.close()
                    raise
                self._connection, self._exchange = connection, exchange
            return self._exchange

    async def wait_idle(self, timeout: float) -> None:
        return None  # jobs run in the workers, and outlive this process

    async def health(self) -> dict[str, str]:
        """Whether the broker connection is open and some worker consumes the queue.

        A server whose jobs sit in a queue that no worker reads is not ready: the declaration
        is passive (it changes nothing) and RabbitMQ answers with the queue's consumer count.
        """
        checks: dict[str, str] = {}
        try:
            await self._open()
            connection = self._connection
            assert connection is not None
            if connection.is_closed:
                raise ConnectionError("reconnecting")
            channel = await asyncio.wait_for(connection.channel(), 2)
            try:
                queue = await asyncio.wait_for(
                    channel.declare_queue(self._queue.name, passive=True), 2
                )
                consumers = queue.declaration_result.consumer_count
            finally:
                with contextlib.suppress(Exception):
                    await channel.close()
        except Exception as exc:
            checks["broker"] = f"failed: {type(exc).__name__}"
            return checks
        checks["broker"] = "ok"
        checks["workers"] = "ok" if consumers else "failed: no worker consumes the queue"
        return checks

    async def _send(self, task: str, payload: dict[str, object], summary: str,
                    task_id: str) -> None:
        # The argsrepr header is what monitoring tools (flower, events, logs) show of a task:
        # a short summary, rather than a repr of the job with its inline photo or question.
        message = self._app.amqp.as_task_v2(
            task_id, task, args=[payload], kwargs={}, argsrepr=summary, kwargsrepr="{}",
            ignore_result=True,
        )
        content_type, encoding, body = dumps(  # type: ignore[no-untyped-call]
            message.body, serializer="json"
        )
        try:
            await self._publish(message.headers, content_type, encoding, body, task_id)
        except Exception:
            # The scan ends failed and retryable (see the class): an operator wants to know.
            QUEUE_PUBLISH_FAILURES.inc()
            raise

    async def _publish(self, headers: dict[str, Any], content_type: str, encoding: str,
                       body: str | bytes, task_id: str) -> None:
        exchange = self._exchange or await self._open()
        await exchange.publish(
            aio_pika.Message(
                body=body.encode() if isinstance(body, str) else body,
                headers=headers,
                content_type=content_type,
                content_encoding=encoding,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                correlation_id=task_id,
                priority=0,
            ),
            routing_key=self._queue.routing_key,
            mandatory=True,
            # A broker that takes the message but never confirms it (a memory or disk alarm
            # blocks publishers) must not hold the session's reader forever.
            timeout=self.CONFIRM_TIMEOUT_S,
        )

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = self._exchange = None
