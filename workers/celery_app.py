"""The Celery application (RabbitMQ broker, no result backend).

Results travel as events through Redis, so there is no result backend (the Redis backend
leaks pub/sub connections at scale). Tasks are acknowledged late and re-queued if the worker
dies, which is safe because the pipeline is idempotent by request id.
"""

from __future__ import annotations

from celery import Celery


def make_celery(broker_url: str, queue: str = "wastecoach.scans") -> Celery:
    app = Celery("wastecoach", broker=broker_url, include=["workers.tasks"])
    app.conf.update(
        task_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=4,
        # Tasks run on the worker's asyncio loop (see workers/pool.py).
        worker_pool="workers.pool:LoopPool",
        broker_connection_retry_on_startup=True,
        task_default_queue=queue,
        worker_hijack_root_logger=False,
        broker_heartbeat=30,
        # A scan that outlives this is stuck; the client already has its scan.done(failed)
        # or can cancel. Redelivery after a crash is what acks_late is for.
        task_time_limit=120,
        task_soft_time_limit=100,
    )
    return app


def _app_from_settings() -> Celery:
    from server.settings import get_settings

    settings = get_settings()
    return make_celery(settings.broker_url, settings.celery_queue)


app = _app_from_settings()
