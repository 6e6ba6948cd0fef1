"""Authentication endpoints. Until OAuth lands, only guest tokens exist."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel

from protocol.messages import ErrorCode
from server.errors import Forbidden
from server.services import Services
from server.users import repository as users

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    user_id: str


@router.post("/guest", response_model=TokenResponse, status_code=201)
async def guest_token(request: Request) -> TokenResponse:
    services: Services = request.app.state.services
    if not services.settings.guest_enabled:
        raise Forbidden("guest login is disabled on this server", code=ErrorCode.FORBIDDEN)
    async with services.db.session() as session:
        user = await users.create_guest(session)
        user_id = user.id
    token = services.tokens.issue_access(user_id, guest=True)
    return TokenResponse(
        access_token=token, expires_in=services.tokens.access_ttl_s, user_id=user_id
    )
