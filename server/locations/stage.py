"""The scan's locations stage: after coaching, the nearest places that take the item.

It runs after the person already has their coaching, so a database that is away (a restart,
a failover) must not turn the whole scan into a failure: the search is retried with backoff
for up to ``LOOKUP_PATIENCE_S``, and if the database is still unreachable the stage answers
with no places and a note saying so, as it does when nothing is nearby.
"""

from __future__ import annotations

import asyncio
import logging
import time

from protocol.messages import BinsSuggested, Classification
from protocol.streams import Stream
from server.contracts import ScanInput
from server.db import Database, database_unavailable
from server.locations import service
from server.locations.streams import catalog

log = logging.getLogger(__name__)

#: How long a scan keeps looking for places while the database is away.
LOOKUP_PATIENCE_S = 15.0
_FIRST_DELAY_S = 0.1
_MAX_DELAY_S = 2.0


class LocationsStage:
    """Implements :class:`server.contracts.LocationStage` on the collection-point table."""

    def __init__(
        self,
        db: Database,
        *,
        radius_m: float = service.DEFAULT_RADIUS_M,
        limit: int = service.DEFAULT_LIMIT,
    ) -> None:
        self._db = db
        self._radius_m = radius_m
        self._limit = limit

    async def suggest(self, scan: ScanInput, classification: Classification) -> BinsSuggested:
        stream = classification.stream
        if scan.location is None:
            # The client decides whether to send a position; say plainly why the list is empty
            # so the app can offer to turn location on.
            return BinsSuggested(
                scan_id=scan.scan_id,
                request_id=scan.request_id,
                stream=stream,
                places=[],
                location_used=False,
                note=catalog().note("no_location", scan.locale),
            )
        found = await self._lookup(scan, stream)
        if found is None:
            return BinsSuggested(
                scan_id=scan.scan_id,
                request_id=scan.request_id,
                stream=stream,
                places=[],
                location_used=False,
                note=catalog().note("unavailable", scan.locale),
            )
        return BinsSuggested(
            scan_id=scan.scan_id,
            request_id=scan.request_id,
            stream=stream,
            places=found.places,
            location_used=True,
            note=found.note,
        )

    async def _lookup(self, scan: ScanInput, stream: Stream) -> service.Suggestion | None:
        """The suggestion, retried while the database is away; None if it stayed away."""
        assert scan.location is not None
        delay = _FIRST_DELAY_S
        deadline = time.monotonic() + LOOKUP_PATIENCE_S
        failing = False
        while True:
            try:
                async with self._db.session() as session:
                    return await service.suggest(
                        session,
                        lat=scan.location.lat,
                        lon=scan.location.lon,
                        stream=stream,
                        locale=scan.locale,
                        radius_m=self._radius_m,
                        limit=self._limit,
                    )
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                if time.monotonic() + delay > deadline:
                    log.error("scan %s: no places, the database is unreachable (%s)",
                              scan.scan_id, exc)
                    return None
                if not failing:  # once per scan, not per attempt
                    failing = True
                    log.warning("scan %s: looking up places failed (%s); retrying for up to "
                                "%.0f s", scan.scan_id, exc, LOOKUP_PATIENCE_S)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_DELAY_S)


def build(db: Database) -> LocationsStage:
    return LocationsStage(db)
