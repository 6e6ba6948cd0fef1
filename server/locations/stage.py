"""The scan's locations stage: after coaching, the nearest places that take the item."""

from __future__ import annotations

from protocol.messages import BinsSuggested, Classification
from server.db import Database
from server.locations import service
from server.locations.streams import catalog
from server.pipeline.stages import ScanInput


class LocationsStage:
    """Implements :class:`server.pipeline.stages.LocationStage` on the collection-point table."""

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
        async with self._db.session() as session:
            found = await service.suggest(
                session,
                lat=scan.location.lat,
                lon=scan.location.lon,
                stream=stream,
                locale=scan.locale,
                radius_m=self._radius_m,
                limit=self._limit,
            )
        return BinsSuggested(
            scan_id=scan.scan_id,
            request_id=scan.request_id,
            stream=stream,
            places=found.places,
            location_used=True,
            note=found.note,
        )
