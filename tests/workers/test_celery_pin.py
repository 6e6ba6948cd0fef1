"""Celery's internals that the product leans on are still there in the installed release.

The pool (``workers/pool.py``) subclasses ``BasePool`` and answers Celery's calls into it; the
publisher (``workers/publisher.py``) builds Celery's own message with ``amqp.as_task_v2`` and
kombu's serialiser. Celery and kombu are pinned to one minor release in pyproject.toml; these
tests fail when a release moves or renames what we use, and when the installed release is
outside the pin (an install that bypassed the lock file)."""

from __future__ import annotations

import inspect
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from celery.concurrency.base import BasePool
from celery.worker.request import Request
from kombu.serialization import dumps
from packaging.requirements import Requirement

from workers.app import SCAN_TASK, make_celery
from workers.pool import LoopPool

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = {}
    for line in project["dependencies"]:
        requirement = Requirement(line)
        found[requirement.name] = requirement
    return found


@pytest.mark.parametrize("package", ["celery", "kombu"])
def test_installed_release_is_within_the_pinned_minor(package: str) -> None:
    requirement = _pins()[package]
    assert requirement.specifier.contains(version(package)), (
        f"{package} {version(package)} is outside {requirement}: check workers/ before moving"
    )
    # A pin, not a floor: the upper bound is what makes an upgrade a decision.
    assert any(spec.operator == "<" for spec in requirement.specifier)


def test_the_pool_overrides_hooks_that_celery_calls() -> None:
    for hook in ("on_start", "on_apply", "on_stop", "on_terminate", "flush", "_get_info"):
        assert hasattr(BasePool, hook), f"BasePool.{hook} is gone"
        assert getattr(LoopPool, hook) is not getattr(BasePool, hook)
    # The worker hands a task to the pool with these, which BasePool passes on to on_apply.
    source = inspect.getsource(Request.execute_using_pool)
    for argument in ("callback=", "accept_callback=", "timeout="):
        assert argument in source, f"Request.execute_using_pool no longer passes {argument}"
    assert "**options" in inspect.getsource(BasePool.apply_async)
    assert "limit" in inspect.signature(BasePool.__init__).parameters


def test_a_requeue_goes_through_on_success_as_celery_does() -> None:
    # workers.pool._requeue hands Request.on_success a failed (True, ExceptionInfo, runtime)
    # result, which Celery takes to on_failure, and there a Reject to reject(requeue=...).
    assert list(inspect.signature(Request.on_success).parameters)[:2] == [
        "self", "failed__retval__runtime"
    ]
    on_failure = inspect.getsource(Request.on_failure)
    assert "Reject" in on_failure and "requeue" in on_failure


def test_the_publisher_builds_celerys_own_message() -> None:
    app = make_celery("amqp://guest:guest@127.0.0.1:5672//", "wastecoach.test")
    signature = inspect.signature(app.amqp.as_task_v2)
    for argument in ("task_id", "name", "args", "kwargs", "argsrepr", "kwargsrepr",
                     "ignore_result"):
        assert argument in signature.parameters, f"as_task_v2 lost {argument}"
    message = app.amqp.as_task_v2(
        "sid:rid", SCAN_TASK, args=[{"scan_id": "s"}], kwargs={}, argsrepr="scan s",
        kwargsrepr="{}", ignore_result=True,
    )
    assert message.headers["task"] == SCAN_TASK and message.headers["id"] == "sid:rid"
    assert message.headers["argsrepr"] == "scan s"
    content_type, encoding, body = dumps(message.body, serializer="json")
    assert content_type == "application/json" and encoding == "utf-8"
    assert '"scan_id": "s"' in body or '"scan_id":"s"' in body
