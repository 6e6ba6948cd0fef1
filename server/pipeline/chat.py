"""Runs one follow-up question: streams the coach's answer as chat events.

Like scans, a chat job runs in the server (embedded) or in a Celery worker (distributed), and
every event goes through the session's event log with an idempotency key, so a redelivered
task does not answer twice; tokens go in batches (:class:`~server.pipeline.emitter.EventEmitter`).
"""

from __future__ import annotations

import logging
import time

from protocol.messages import ChatDelta, ChatDone, Classification, GeoPoint
from server.contracts import ChatQuestion, ChatResult
from server.events.base import CHAT_DONE
from server.metrics import STAGE_DURATION
from server.pipeline.emitter import EventEmitter
from server.pipeline.jobs import ChatJob
from server.pipeline.run import PipelineDeps
from server.scans import repository as scans

log = logging.getLogger(__name__)


async def _scan_context(
    job: ChatJob, deps: PipelineDeps
) -> tuple[Classification | None, GeoPoint | None]:
    """The asked-about scan's classification and, for the district's rules, where it was
    taken (the question's own location wins)."""
    if job.scan_id is None:
        return None, job.location
    async with deps.db.session() as session:
        scan = await scans.get(session, job.scan_id)
    # Only the asker's own scans give context; anyone else's id is treated as absent.
    if scan is None or scan.user_id != job.user_id:
        return None, job.location
    location = job.location
    if location is None and scan.lat is not None and scan.lon is not None:
        location = GeoPoint(lat=scan.lat, lon=scan.lon)
    if scan.classification is None:
        return None, location
    return Classification.model_validate(scan.classification), location


async def run_chat(job: ChatJob, deps: PipelineDeps) -> None:
    chat = deps.stages.chat
    # Tokens that arrive while an append is in flight go together in the next one.
    emitter = EventEmitter(deps.log, job.session_id, job.request_id, scoped=False)

    if chat is None:
        await emitter.finish(
            ChatDone(request_id=job.request_id, scan_id=job.scan_id, text="",
                     backend="none", outcome="invalid",
                     fallback_reason="chat is not available on this server"),
            CHAT_DONE,
        )
        return
    started = time.perf_counter()
    index = 0
    result: ChatResult | None = None
    try:
        context, location = await _scan_context(job, deps)
        question = ChatQuestion(
            request_id=job.request_id,
            session_id=job.session_id,
            user_id=job.user_id,
            locale=job.locale,
            text=job.text,
            scan_id=job.scan_id,
            scan_context=context,
            location=location,
        )
        async for chunk in chat.converse(question):
            if isinstance(chunk, ChatResult):
                result = chunk
                continue
            await emitter.emit(ChatDelta(request_id=job.request_id, index=index, text=chunk),
                               f"chat:delta:{index}")
            if emitter.session_gone:  # nobody is listening any more
                await emitter.aclose()
                return
            index += 1
    except Exception:
        log.exception("chat %s failed", job.request_id)
    if result is None:
        await emitter.finish(
            ChatDone(request_id=job.request_id, scan_id=job.scan_id, text="", backend="none",
                     outcome="failed", fallback_reason="the answer failed; ask again"),
            CHAT_DONE,
        )
        return
    elapsed = time.perf_counter() - started
    STAGE_DURATION.labels(stage="chat").observe(elapsed)
    log.debug("chat %s answered in %.1f ms", job.request_id, elapsed * 1000)
    await emitter.finish(
        ChatDone(
            request_id=job.request_id,
            scan_id=job.scan_id,
            text=result.text,
            item_ids=result.item_ids,
            rule_ids=result.rule_ids,
            backend=result.backend,
            fallback_reason=result.fallback_reason,
            outcome=result.outcome.value,
            district=result.district,
        ),
        CHAT_DONE,
    )
