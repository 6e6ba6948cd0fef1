"""Runs one scan through vision → coaching → locations and emits its events.

This is the only pipeline code: the embedded runner calls :func:`run_scan` in the server's
event loop, a Celery worker calls it from its task. Every event goes through the session's
event log (:class:`~server.pipeline.emitter.EventEmitter`) with an idempotency key derived from
the request id, so a task that runs twice (a worker crashed after emitting some events, the
broker redelivered it) emits nothing twice, and a scan that was cancelled emits nothing more:
the log refuses appends once ``scan.done`` exists.

The outcome is written to the database before ``scan.done`` is announced, so a scan the client
saw finish is never lost; while it is written, the last events are already on their way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from protocol.messages import (
    Classification,
    CoachingDelta,
    CoachingDone,
    Error,
    ErrorCode,
    ErrorInfo,
    InlineImage,
    ScanClarify,
    ScanClassified,
    ScanDone,
    ScanStatus,
    Stage,
)
from server.contracts import CoachingResult, Question, ScanInput, Stages
from server.db import Database
from server.errors import WasteCoachError
from server.events.base import EventLog
from server.metrics import SCAN_TIME_TO_CLASSIFIED, SCANS, STAGE_DURATION
from server.pipeline.emitter import (
    TRANSIENT_ERRORS,
    AlreadyRunning,
    EventEmitter,
    EventsNotDelivered,
    RequestClosed,
)
from server.pipeline.jobs import ScanJob
from server.scans import repository as scans
from server.uploads.storage import Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PipelineDeps:
    log: EventLog
    db: Database
    storage: Storage
    stages: Stages
    max_image_bytes: int
    clarify_timeout_s: float = 60.0
    #: True where a broker may run the same job again (Celery, after a worker died); the
    #: embedded runner runs each job once.
    jobs_may_rerun: bool = False


#: Kept in a request's answer list (where no client answer can look like it: answers are
#: choice labels) to tell a rerun that the clarify wait already ended without an answer.
CLARIFY_TIMED_OUT = "\x00timed-out"


async def _clarify(
    job: ScanJob,
    deps: PipelineDeps,
    emitter: EventEmitter,
    classification: Classification,
    envelope: dict[str, str],
) -> Classification:
    """Ask when vision is unsure; wait for the pick; continue with the best guess on timeout.

    A job the broker may run again (a worker died after the person answered) must reach the
    same decision without asking again: the first run already took the answer off the list,
    and a second wait would end only at the timeout, with the unconfirmed guess, mixing its
    coaching into what the client already has. So where jobs may rerun, the decision goes back
    onto the request's answer list (the pick itself, or :data:`CLARIFY_TIMED_OUT`), where the
    rerun finds it at once."""
    clarifier = deps.stages.clarifier
    if clarifier is None:
        return classification
    question = clarifier.question(classification, job.locale)
    if question is None:
        return classification
    # The person's time to answer: a stage of the scan, timed however the wait ends.
    started = time.perf_counter()
    try:
        return await _ask(job, deps, emitter, classification, envelope, question)
    finally:
        STAGE_DURATION.labels(stage="clarify").observe(time.perf_counter() - started)


async def _ask(
    job: ScanJob,
    deps: PipelineDeps,
    emitter: EventEmitter,
    classification: Classification,
    envelope: dict[str, str],
    question: Question,
) -> Classification:
    clarifier = deps.stages.clarifier
    assert clarifier is not None
    timeout = deps.clarify_timeout_s
    await emitter.emit(
        ScanClarify(
            question=question.text, choices=question.choices, timeout_s=timeout, **envelope
        ),
        "clarify",
    )
    deadline = time.monotonic() + timeout
    attempt = 0
    while (remaining := deadline - time.monotonic()) > 0:
        answer = await _next_answer(job, deps, remaining)
        if answer is None or answer == CLARIFY_TIMED_OUT:
            break
        confirmed = clarifier.resolve(classification, question, answer)
        if confirmed is not None:
            await _remember(job, deps, answer)
            await emitter.emit(
                ScanClassified(classification=confirmed, **envelope), "classified:confirmed"
            )
            return confirmed
        attempt += 1
        offered = ", ".join(c.label for c in question.choices)
        await emitter.emit(
            Error(
                code=ErrorCode.INVALID_CHOICE,
                message=f"{answer!r} is not one of the choices: {offered}",
                request_id=job.request_id,
            ),
            f"clarify:invalid:{attempt}",
        )
    await _remember(job, deps, CLARIFY_TIMED_OUT)
    return classification


async def _next_answer(job: ScanJob, deps: PipelineDeps, timeout: float) -> str | None:
    """The next answer within ``timeout``; a log that is briefly unreachable is waited out
    (with backoff, warning once) rather than failing the scan."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    warned = False
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            return await deps.log.wait_answer(job.session_id, job.request_id, remaining)
        except TRANSIENT_ERRORS as exc:
            if not warned:
                warned = True
                log.warning("scan %s: waiting for the clarify answer failed (%s); retrying",
                            job.scan_id, exc)
            await asyncio.sleep(min(delay, max(remaining, 0.0)))
            delay = min(delay * 2, 2.0)
    return None


async def _remember(job: ScanJob, deps: PipelineDeps, decision: str) -> None:
    """Leave the clarify decision for a rerun of this job (see :func:`_clarify`)."""
    if not deps.jobs_may_rerun:
        return  # one run per job: nothing would ever read it
    try:
        await deps.log.put_answer(job.session_id, job.request_id, decision)
    except TRANSIENT_ERRORS as exc:  # only a rerun would miss it; this run goes on
        log.warning("scan %s: the clarify decision could not be kept (%s)", job.scan_id, exc)


#: Longest a scan's stages may take together (vision, the clarify wait, coaching, locations).
#: The worker's task time limit (workers.app.TASK_TIME_LIMIT_S) is derived from it.
SCAN_DEADLINE_S = 150.0

#: How long a finished scan keeps trying to save its outcome (a database restart, a failover).
RECORD_PATIENCE_S = 30.0


async def _record(
    deps: PipelineDeps, job: ScanJob, status: str, timings: dict[Stage, float], **outcome: Any
) -> bool:
    """Save the outcome, retrying while the database is away; False if it could not be."""
    delay = 0.05
    deadline = time.monotonic() + RECORD_PATIENCE_S
    while True:
        try:
            await scans.record_outcome(
                deps.db,
                **job.columns(),
                status=status,
                timings_ms={k.value: v for k, v in timings.items()},
                **outcome,
            )
            return True
        except IntegrityError:  # no retry helps: say, the user was deleted while it ran
            log.warning("scan %s cannot be saved", job.scan_id, exc_info=True)
            return False
        except Exception:
            if time.monotonic() + delay > deadline:
                log.exception("could not save the outcome of scan %s", job.scan_id)
                return False
            log.warning("saving scan %s failed; retrying in %.2f s", job.scan_id, delay,
                        exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


async def _image_bytes(job: ScanJob, deps: PipelineDeps) -> tuple[bytes, str]:
    if isinstance(job.image, InlineImage):
        return job.image.decode(), job.image.content_type
    # The clean copy the upload's first use stored (server.uploads.service): always a JPEG.
    data = await deps.storage.get(job.image.key, max_bytes=deps.max_image_bytes)
    return data, "image/jpeg"


#: A run's lease on its scan: held this long, renewed a third of the way through. A worker that
#: dies holding it delays the redelivered copy by at most this much.
LEASE_TTL_S = 15.0


async def run_scan(job: ScanJob, deps: PipelineDeps) -> ScanStatus:
    """Run one scan, unless another run of it holds its lease (then :class:`AlreadyRunning`:
    the job goes back to the queue)."""
    owner = secrets.token_hex(8)
    try:
        leased = await deps.log.lease(job.session_id, job.request_id, owner, LEASE_TTL_S)
    except Exception as exc:  # the log is away: nothing can be delivered either
        raise EventsNotDelivered(f"could not take the scan's lease: {exc}") from exc
    if not leased:
        raise AlreadyRunning(f"scan {job.scan_id} is running elsewhere")
    renewal = asyncio.create_task(_renew(deps.log, job, owner), name=f"lease-{job.scan_id}")
    try:
        status = await _run_scan(job, deps)
        SCANS.labels(status=status.value).inc()
        return status
    finally:
        renewal.cancel()
        with contextlib.suppress(BaseException):
            await renewal
        with contextlib.suppress(Exception):
            await deps.log.release(job.session_id, job.request_id, owner)


async def _renew(log_: EventLog, job: ScanJob, owner: str) -> None:
    while True:
        await asyncio.sleep(LEASE_TTL_S / 3)
        try:
            if not await log_.lease(job.session_id, job.request_id, owner, LEASE_TTL_S):
                log.warning("scan %s lost its lease to another run", job.scan_id)
                return
        except Exception as exc:  # Redis away for a moment: the next renewal may succeed
            log.info("could not renew the lease of scan %s: %s", job.scan_id, exc)


async def _run_scan(job: ScanJob, deps: PipelineDeps) -> ScanStatus:
    emitter = EventEmitter(deps.log, job.session_id, job.request_id)
    timings: dict[Stage, float] = {Stage.QUEUE: max(0.0, (time.time() - job.enqueued_at) * 1000)}
    envelope = {"scan_id": job.scan_id, "request_id": job.request_id}
    outcome: dict[str, Any] = {}
    try:
        # Every stage together, clarify wait included, within one deadline: a scan that
        # overruns it ends failed (retryable) with its scan.done, before the worker's
        # task time limit would cut it off without one.
        async with asyncio.timeout(SCAN_DEADLINE_S):
            image, content_type = await _image_bytes(job, deps)
            scan = ScanInput(
                scan_id=job.scan_id,
                request_id=job.request_id,
                session_id=job.session_id,
                user_id=job.user_id,
                locale=job.locale,
                image=image,
                content_type=content_type,
                location=job.location,
            )

            started = time.perf_counter()
            classification = await deps.stages.vision.classify(scan)
            timings[Stage.VISION] = (time.perf_counter() - started) * 1000
            STAGE_DURATION.labels(stage="vision").observe(timings[Stage.VISION] / 1000)
            outcome["classification"] = classification.model_dump(mode="json")
            await emitter.emit(
                ScanClassified(classification=classification, **envelope), "classified"
            )
            # Accepted (the server's clock) to handed to the log (this process's): across
            # hosts this includes their clock offset, which NTP keeps to a millisecond or so.
            SCAN_TIME_TO_CLASSIFIED.observe(max(0.0, time.time() - job.enqueued_at))
            classification = await _clarify(job, deps, emitter, classification, envelope)

            started = time.perf_counter()
            result: CoachingResult | None = None
            index = 0
            async for chunk in deps.stages.coach.coach(scan, classification):
                if isinstance(chunk, CoachingResult):
                    result = chunk
                    break
                await emitter.emit(
                    CoachingDelta(index=index, text=chunk, **envelope), f"delta:{index}"
                )
                index += 1
            if result is None:
                raise WasteCoachError(
                    "the coach ended without a result", code=ErrorCode.STAGE_FAILED
                )
            timings[Stage.COACHING] = (time.perf_counter() - started) * 1000
            STAGE_DURATION.labels(stage="coach").observe(timings[Stage.COACHING] / 1000)
            outcome.update(
                coaching_text=result.text, rule_ids=result.rule_ids, coach_backend=result.backend
            )
            await emitter.emit(
                CoachingDone(
                    text=result.text,
                    rule_ids=result.rule_ids,
                    backend=result.backend,
                    fallback_reason=result.fallback_reason,
                    district=result.district,
                    **envelope,
                ),
                "coaching.done",
            )

            started = time.perf_counter()
            bins = await deps.stages.locations.suggest(scan, classification)
            timings[Stage.LOCATIONS] = (time.perf_counter() - started) * 1000
            STAGE_DURATION.labels(stage="locations").observe(timings[Stage.LOCATIONS] / 1000)
            outcome["bins"] = bins.model_dump(mode="json", exclude={"seq", "ts"})
    except RequestClosed:
        await _record(deps, job, "cancelled", timings, **outcome)
        await emitter.aclose()
        return ScanStatus.CANCELLED
    except EventsNotDelivered:
        # The event log stayed unreachable through the emitter's retries: not a failure of
        # the scan. Nothing is recorded, so that the rerun the worker asks for (the job is not
        # acknowledged) can still record the real outcome; it appends what is missing.
        await emitter.aclose()
        raise
    except Exception as exc:
        if isinstance(exc, WasteCoachError):
            error = ErrorInfo(code=exc.code, message=exc.message, retryable=exc.retryable)
        elif isinstance(exc, TimeoutError):
            log.warning("scan %s overran its %.0f s deadline", job.scan_id, SCAN_DEADLINE_S)
            error = ErrorInfo(
                code=ErrorCode.STAGE_FAILED, message="the scan took too long; try again",
                retryable=True,
            )
        else:
            log.exception("scan %s failed", job.scan_id)
            error = ErrorInfo(
                code=ErrorCode.STAGE_FAILED, message="the scan failed; try again", retryable=True
            )
        await _record(deps, job, "failed", timings, error=error.model_dump(mode="json"), **outcome)
        await emitter.finish(
            ScanDone(status=ScanStatus.FAILED, timings_ms=timings, error=error, **envelope)
        )
        return ScanStatus.FAILED

    # Persist before telling the client it is done: a finished scan is never lost. Events
    # still queued are appended meanwhile; bins.suggested waits and goes with scan.done, in
    # one round trip to the log.
    if not await _record(deps, job, "completed", timings, **outcome):
        error = ErrorInfo(code=ErrorCode.INTERNAL,
                          message="the result could not be saved; try again", retryable=True)
        await emitter.finish(
            ScanDone(status=ScanStatus.FAILED, timings_ms=timings, error=error, **envelope),
            after=[(bins, "bins")],
        )
        return ScanStatus.FAILED
    await emitter.finish(
        ScanDone(status=ScanStatus.COMPLETED, timings_ms=timings, **envelope),
        after=[(bins, "bins")],
    )
    return ScanStatus.COMPLETED
