"""The jobs a runner takes: what one scan or one follow-up question needs to run.

Serialisable (pydantic), because in distributed mode they travel to a worker as Celery
messages (``workers.publisher``); the embedded runner hands them over as they are.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from protocol.messages import GeoPoint, ImageRef, Locale


class Job(BaseModel):
    """What every job carries: whose request it is, where its events go, when it started."""

    model_config = ConfigDict(frozen=True)

    request_id: str
    session_id: str
    user_id: str
    locale: Locale
    enqueued_at: float = Field(description="time.time() when the server enqueued the job.")


class ScanJob(Job):
    scan_id: str
    image: ImageRef = Field(discriminator="kind")
    location: GeoPoint | None = None
    upload_key: str | None = None

    def columns(self) -> dict[str, Any]:
        """The scan's database columns known when it starts."""
        return {
            "id": self.scan_id,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "request_id": self.request_id,
            "locale": self.locale.value,
            "image_kind": self.image.kind,
            "upload_key": self.upload_key,
            "lat": self.location.lat if self.location else None,
            "lon": self.location.lon if self.location else None,
            "created_at": datetime.fromtimestamp(self.enqueued_at, UTC),
        }


class ChatJob(Job):
    text: str
    scan_id: str | None = None
    location: GeoPoint | None = None
