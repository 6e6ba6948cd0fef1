"""Which database errors mean "away for now" (retry, degrade) rather than "this query is wrong".

The driver's errors vary with the moment of an outage; the fault suite saw each of these while
PostgreSQL stopped under load."""

from __future__ import annotations

import pytest
from sqlalchemy import exc

from server.db import database_unavailable


def _wrapped(cls: type[exc.DBAPIError], message: str) -> exc.DBAPIError:
    return cls("SELECT 1", {}, Exception(message))


@pytest.mark.parametrize("error", [
    ConnectionRefusedError(111, "Connect call failed"),
    TimeoutError(),
    _wrapped(exc.DBAPIError, "the database system is shutting down"),
    _wrapped(exc.OperationalError, "server closed the connection unexpectedly"),
    _wrapped(exc.InterfaceError, "connection is closed"),
    _wrapped(exc.InternalError, "cannot switch to state 12; another operation is in progress"),
])
def test_an_outage_is_unavailable(error: BaseException) -> None:
    assert database_unavailable(error)


@pytest.mark.parametrize("error", [
    _wrapped(exc.ProgrammingError, 'relation "nope" does not exist'),
    _wrapped(exc.IntegrityError, "violates foreign key constraint"),
    _wrapped(exc.DataError, "invalid input syntax"),
    ValueError("a bug"),
])
def test_a_query_that_cannot_work_is_not(error: BaseException) -> None:
    assert not database_unavailable(error)


def test_an_invalidated_connection_is_unavailable_whatever_its_class() -> None:
    error = exc.ProgrammingError("SELECT 1", {}, Exception("x"), connection_invalidated=True)
    assert database_unavailable(error)


def test_rest_answers_503_for_an_outage_and_500_for_a_broken_query(tmp_path: object) -> None:
    """Both as JSON: an outage says retry (503, Retry-After); a query that can never work is a
    500, never a 503 that would have clients retry it forever."""
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import Settings

    app = create_app(Settings(data_dir=tmp_path))  # type: ignore[arg-type]

    @app.get("/outage")
    async def outage() -> None:
        raise _wrapped(exc.DBAPIError, "the database system is shutting down")

    @app.get("/broken")
    async def broken() -> None:
        raise _wrapped(exc.ProgrammingError, 'relation "nope" does not exist')

    client = TestClient(app, raise_server_exceptions=False)  # no lifespan: routes only
    away = client.get("/outage")
    assert away.status_code == 503 and away.headers["retry-after"] == "2"
    assert away.json()["error"]["code"] == "service_unavailable"
    wrong = client.get("/broken")
    assert wrong.status_code == 500 and wrong.json()["error"]["code"] == "internal"
