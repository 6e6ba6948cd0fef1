"""Upload endpoints: a pre-signed PUT (S3) or its local equivalent (embedded)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from protocol.messages import ErrorCode
from server.auth.deps import CurrentUser
from server.deps import ContainerDep
from server.errors import Forbidden, InvalidInput
from server.rest import error_responses
from server.uploads import service
from server.uploads.storage import LocalStorage

router = APIRouter(
    prefix="/api/v1/uploads",
    tags=["uploads"],
    responses=error_responses(400, 401, 403, 404, 422, 429, 503),
)


class UploadRequest(BaseModel):
    """Strict, like the WebSocket messages: ``"size": "1"`` or ``true`` is refused (422), not
    coerced, and unknown fields are refused."""

    model_config = ConfigDict(strict=True, extra="forbid")

    content_type: str = Field(examples=["image/jpeg"])
    size: int = Field(gt=0, description="Exact size of the file in bytes.")


class UploadResponse(BaseModel):
    key: str = Field(description="Send this as image.key in scan.start once the PUT succeeded.")
    url: str
    method: str
    headers: dict[str, str]
    expires_at: float


@router.post("", response_model=UploadResponse, status_code=201)
async def create_upload(
    body: UploadRequest, user: CurrentUser, container: ContainerDep
) -> UploadResponse:
    async with container.db.session() as session:
        upload, ticket = await service.create_upload(
            session,
            container.storage,
            container.settings.uploads,
            user_id=user.user_id,
            content_type=body.content_type,
            size=body.size,
        )
    return UploadResponse(
        key=upload.key,
        url=ticket.url,
        method=ticket.method,
        headers=ticket.headers,
        expires_at=ticket.expires_at,
    )


@router.put("/local/{key:path}", status_code=204)
async def local_put(
    key: str,
    request: Request,
    container: ContainerDep,
    content_type: Annotated[str, Query()],
    size: Annotated[int, Query(gt=0)],
    expires: Annotated[int, Query()],
    sig: Annotated[str, Query(min_length=64, max_length=64)],
    content_type_header: Annotated[str | None, Header(alias="content-type")] = None,
) -> Response:
    """Embedded mode's stand-in for S3: the signed URL is the authorisation, as with S3."""
    storage = container.storage
    if not isinstance(storage, LocalStorage):
        raise Forbidden(
            "local uploads are disabled; use the pre-signed S3 URL",
            code=ErrorCode.UPLOAD_FORBIDDEN,
        )
    if not storage.check_signature(key, content_type, size, expires, sig):
        raise Forbidden("the upload URL is invalid or has expired", code=ErrorCode.UPLOAD_FORBIDDEN)
    if content_type_header != content_type:
        raise InvalidInput(f"Content-Type must be {content_type!r}")
    await storage.write_stream(key, request.stream(), size=size)
    return Response(status_code=204)
