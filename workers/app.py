"""The Celery application (RabbitMQ broker, no result backend), built by :func:`make_celery`.

Nothing builds an app at import: the worker (``wastecoach worker``) builds one with its tasks
(``workers.tasks.make_worker_app``), the publisher (``workers.publisher``, in the API process)
one without, for Celery's message format only.

Results travel as events through Redis, so there is no result backend (the Redis backend
leaks pub/sub connections at scale). Tasks are acknowledged late and re-queued if the worker
dies, which is safe because the pipeline is idempotent by request id.

A RabbitMQ restart must not end a worker. The connection settings below say so explicitly
rather than trusting defaults that changed between Celery releases: retry forever (Celery's
own default gives up after 100 attempts and exits the worker), at start-up too, with the
backoff Celery applies between attempts (2 s more each time, at most 30 s: one log line per
attempt, not a flood). Tasks running when the connection drops are left to finish; their
messages are redelivered anyway (see workers/pool.py).
"""

from __future__ import annotations

from celery import Celery
from kombu.entity import Exchange, Queue

from server.pipeline.emitter import APPEND_PATIENCE_S
from server.pipeline.run import RECORD_PATIENCE_S, SCAN_DEADLINE_S

#: A scan's stages end at their deadline; saving the outcome and announcing ``scan.done`` may
#: then take their full patience each while a service is away; 30 s more of margin.
TASK_TIME_LIMIT_S = SCAN_DEADLINE_S + RECORD_PATIENCE_S + APPEND_PATIENCE_S + 30

#: The task names, shared by the publisher and the worker.
SCAN_TASK = "wastecoach.scan"
CHAT_TASK = "wastecoach.chat"


def make_celery(
    broker_url: str, queue: str = "wastecoach.scans", *, quorum: bool = False
) -> Celery:
    """The Celery app, without tasks: the worker adds them (``workers.tasks.make_worker_app``);
    the publisher needs only Celery's message format and the queue's declaration.

    ``quorum``: the queue is a RabbitMQ quorum queue (``WASTECOACH_CELERY_QUEUE_TYPE``).
    Celery knows a quorum queue only by this argument of its declaration (it does not ask the
    broker), and without it would set a channel-wide prefetch, which quorum queues refuse; so
    a vhost's default queue type is not enough, the declaration must say it.
    """
    app = Celery("wastecoach", broker=broker_url)
    if quorum:
        # What Celery declares for task_default_queue by itself (a direct exchange and a
        # routing key of the queue's name, durable), plus the type.
        exchange = Exchange(queue, type="direct")  # type: ignore[no-untyped-call]
        app.conf.task_queues = (
            Queue(  # type: ignore[no-untyped-call]
                queue, exchange, routing_key=queue, queue_arguments={"x-queue-type": "quorum"}
            ),
        )
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        # Tasks run on the worker's asyncio loop (see workers/pool.py).
        worker_pool="workers.pool:LoopPool",
        broker_connection_retry=True,
        broker_connection_retry_on_startup=True,
        # None: never give up; a supervisor restarting the worker would do the same, slower.
        broker_connection_max_retries=None,
        # A channel error (say, a queue deleted during a RabbitMQ reset) reconnects as well.
        broker_channel_error_retry=True,
        # Seconds to establish a connection before the attempt counts as failed.
        broker_connection_timeout=4,
        # A silently dead connection (a network partition) is noticed within about a minute.
        broker_heartbeat=30,
        broker_heartbeat_checkrate=2,
        # Running scans finish on the worker's loop (their redelivered copies find scan.done);
        # cancelling them would need a pool that can terminate one job, and redo the work.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        # After a reconnect Celery lowers the prefetch count by the tasks still running and
        # raises it again with a synchronous basic.qos in every acknowledgement's callback.
        # Seen in the fault suite (RabbitMQ stop_app 10 s): the consumer then waited for a
        # qos-ok forever and took no new task; the known workaround is to turn it off
        # (celery #9512). Our pool queues what exceeds its concurrency itself.
        worker_enable_prefetch_count_reduction=False,
        task_default_queue=queue,
        worker_hijack_root_logger=False,
        # A scan that outlives this is stuck (see TASK_TIME_LIMIT_S). Redelivery after a
        # crash is what acks_late is for.
        task_time_limit=TASK_TIME_LIMIT_S,
        task_soft_time_limit=TASK_TIME_LIMIT_S - 10,
    )
    return app
