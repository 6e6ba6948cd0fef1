"""All configuration, in one pydantic-settings object.

Every field is read from the environment with the ``WASTECOACH_`` prefix; nested sections use
``__`` (``WASTECOACH_S3__BUCKET``). With nothing set, the server runs in embedded mode: SQLite,
an in-process bus and runner, files under ``~/.local/share/wastecoach`` and the embedded models.
"""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.auth.config import AccountsSettings


class Mode(StrEnum):
    EMBEDDED = "embedded"
    DISTRIBUTED = "distributed"


class QueueType(StrEnum):
    """RabbitMQ's type of the scan queue."""

    CLASSIC = "classic"
    QUORUM = "quorum"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "wastecoach"


class S3Settings(BaseModel):
    bucket: str = "wastecoach-uploads"
    region: str = "ap-northeast-2"
    endpoint_url: str | None = None
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None


class AuthSettings(BaseModel):
    #: HMAC key for our JWTs. Generated and kept in the data dir when unset (embedded only).
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "wastecoach"
    jwt_audience: str = "wastecoach-app"
    access_ttl_s: int = Field(default=900, ge=30)
    #: The guest-token endpoint; on in embedded mode, off unless asked for in distributed mode.
    guest_enabled: bool | None = None


class OpenAISettings(BaseModel):
    """Any OpenAI-compatible endpoint. Without an API key the embedded backends are used."""

    api_key: SecretStr | None = None
    base_url: str | None = None
    chat_model: str = "gpt-4o"
    vision_model: str = "gpt-4o"
    timeout_s: float = Field(default=8.0, gt=0)
    first_token_timeout_s: float = Field(default=4.0, gt=0)


class SessionSettings(BaseModel):
    #: Hard cap on one connection's lifetime; the client gets ``session.expiring`` first.
    max_lifetime_s: float = Field(default=3600.0, gt=0)
    expiry_warning_s: float = Field(default=30.0, ge=0)
    #: ``auth.expiring`` goes out this long before the access token expires.
    token_warning_s: float = Field(default=60.0, gt=0)
    #: A connection that sends nothing (not even ``ping``) for this long is closed.
    idle_timeout_s: float = Field(default=90.0, gt=0)
    heartbeat_interval_s: float = Field(default=25.0, gt=0)
    auth_timeout_s: float = Field(default=10.0, gt=0)
    #: Events waiting for a slow client before it is closed with 1013.
    send_queue_size: int = Field(default=512, ge=8)
    #: Events appended since the client connected that it has not taken yet (not written to
    #: its socket) before it is closed with 1013. Well under ``replay_max_events``, so what
    #: the socket buffers still hold is in the history when the client resumes. Unset, a fifth
    #: of ``replay_max_events`` (400 by default).
    max_unsent_events: int = Field(default=0, ge=0)
    max_concurrent_scans: int = Field(default=4, ge=1)
    #: Chat questions being answered at once per session; one more gets ``too_many_chats``.
    max_concurrent_chats: int = Field(default=2, ge=1)
    #: WebSocket connections one client address may hold open at once (in this process), and
    #: how many of those may still be before ``session.start`` succeeded. Generous: phones on
    #: a carrier share public addresses (CGNAT), and a campus or office shares one; the second
    #: cap is the tight one, since a socket that never signs in costs its holder nothing.
    #: Behind a load balancer the address is the client's only when the proxy is trusted
    #: (``forwarded_allow_ips``).
    max_connections_per_address: int = Field(default=256, ge=1)
    max_unauthenticated_per_address: int = Field(default=16, ge=1)
    #: How long a dropped session's events stay available for resume.
    replay_ttl_s: int = Field(default=600, ge=10)
    replay_max_events: int = Field(default=2000, ge=100)
    #: How long a scan waits for the answer to scan.clarify before going on with its best guess.
    #: At most 120 s: the wait is part of the scan's 150 s deadline
    #: (``server.pipeline.run.SCAN_DEADLINE_S``), which leaves the other stages 30 s.
    clarify_timeout_s: float = Field(default=60.0, gt=0, le=120.0)

    @property
    def touch_interval_s(self) -> float:
        """How often a connected session's log is kept alive: well inside its TTL."""
        return min(30.0, self.replay_ttl_s / 3)

    @model_validator(mode="after")
    def _lag_fits_history(self) -> SessionSettings:
        if self.max_unsent_events == 0:
            self.max_unsent_events = self.replay_max_events // 5
        if self.max_unsent_events * 2 > self.replay_max_events:
            raise ValueError(
                "session.max_unsent_events must be at most half of session.replay_max_events, "
                "or a slow client's history could be trimmed before it is closed"
            )
        return self


class HttpSettings(BaseModel):
    """What a connection may hold before its request head (request line and headers) is
    complete: uvicorn waits for a head without limit (slow loris; ``server.request_heads``)."""

    #: A request head must be complete this long after the connection opened (a keep-alive
    #: connection's next request: after its first byte), or the connection gets 408 and is
    #: closed. A deadline, not an idle timer: a head trickled a byte at a time is cut too.
    head_timeout_s: float = Field(default=10.0, gt=0)
    #: Connections one client address may hold at once whose head is not complete yet; one
    #: more gets 503 and is closed before anything is read. The address is the socket's peer
    #: (no header has been read yet), so a peer in ``trusted_proxies`` is not capped: a load
    #: balancer speaks for many clients, and its own limits apply to them.
    max_unfinished_heads_per_address: int = Field(default=32, ge=1)
    #: The same for all peers together, trusted proxies included.
    max_unfinished_heads: int = Field(default=1024, ge=1)
    #: A request's body must be in this long after its head, plus its declared length at
    #: ``body_min_bytes_per_s`` (an undeclared, chunked one: ``body_max_bytes`` at that rate),
    #: or the connection gets 408 and is closed; until then it counts as unfinished for the
    #: caps above (a body trickled a byte at a time holds a connection like a head would).
    body_timeout_s: float = Field(default=30.0, gt=0)
    body_min_bytes_per_s: int = Field(default=16 * 1024, ge=1)
    body_max_bytes: int = Field(default=16 * 1024 * 1024, ge=1)
    #: Bytes of unfinished WebSocket messages (a frame partly received, the fragments of a
    #: message) that one client address may hold across its sockets; the socket whose bytes
    #: go over it is closed with 1008 (``server.ws_inbound``). The WebSocket layer buffers up
    #: to a message's limit (1.6 MiB) per socket before any check of ours, so without this an
    #: address with 256 sockets could hold 400 MiB. Trusted proxies count only in all.
    max_unread_bytes_per_address: int = Field(default=32 * 1024 * 1024, ge=2 * 1024 * 1024)
    #: The same for all peers together.
    max_unread_bytes: int = Field(default=512 * 1024 * 1024, ge=2 * 1024 * 1024)


class UploadSettings(BaseModel):
    max_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    content_types: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp")
    #: How long a PUT URL is valid.
    url_ttl_s: int = Field(default=600, ge=30)
    #: How long an upload may wait for its first scan (counted from its creation); then the
    #: sweep deletes it and a scan of it answers ``upload_not_found``.
    unused_ttl_s: int = Field(default=3600, ge=60)
    #: Per user, over the last 24 hours (every upload created counts, used or not):
    #: beyond either, ``POST /api/v1/uploads`` answers 429 ``upload_quota_exceeded``.
    daily_uploads: int = Field(default=200, ge=1)
    daily_bytes: int = Field(default=1024 * 1024 * 1024, gt=0)
    #: How often the sweep of abandoned uploads runs (in each worker; embedded: the server).
    sweep_interval_s: float = Field(default=300.0, ge=5.0)

    @model_validator(mode="after")
    def _limits_agree(self) -> UploadSettings:
        if self.unused_ttl_s < self.url_ttl_s:
            raise ValueError(
                "uploads.unused_ttl_s must be at least uploads.url_ttl_s, or a file could be "
                "swept while its upload URL still works"
            )
        if self.daily_bytes < self.max_bytes:
            raise ValueError(
                "uploads.daily_bytes must be at least uploads.max_bytes, or the largest "
                "allowed upload could never be made"
            )
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="WASTECOACH_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    mode: Mode = Mode.EMBEDDED
    data_dir: Path = Field(default_factory=_default_data_dir)
    #: SQLAlchemy async URL; defaults to SQLite in ``data_dir`` (embedded).
    database_url: str | None = None
    redis_url: str = "redis://127.0.0.1:6379/0"
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672//"
    celery_queue: str = "wastecoach.scans"
    #: The queue's RabbitMQ type. ``quorum`` (production, deploy/k8s) is replicated and keeps
    #: its messages through a broker restart; the server and the workers then declare it with
    #: ``x-queue-type: quorum``, which is also what tells Celery to use per-consumer prefetch
    #: (quorum queues refuse a channel-wide one). A queue keeps the type it was made with:
    #: switching an existing queue needs a new name, or the old queue deleted once empty.
    celery_queue_type: QueueType = QueueType.CLASSIC
    #: Public base URL used to build upload links in embedded mode. Unset, it follows ``host``
    #: and ``port``: read it as ``public_base_url``.
    public_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    #: Peers whose ``X-Forwarded-For`` and ``X-Forwarded-Proto`` headers are believed: the
    #: load balancers in front of ``serve``, as comma-separated addresses or networks
    #: (``10.0.0.0/8,fd00::/8``), or ``*`` for any peer (only where nothing else can reach the
    #: port). The client's address, which per-address limits count, is the last address in
    #: ``X-Forwarded-For`` that is not a trusted proxy; from any other peer the headers are
    #: ignored and the peer's own address counts.
    trusted_proxies: str = "127.0.0.1,::1"
    #: ``Strict-Transport-Security`` max-age on every response; 0 (the default) sends none.
    #: Set it only where clients reach the service over HTTPS alone (TLS ends at the load
    #: balancer): browsers then refuse plain HTTP to this host for that long.
    hsts_max_age_s: int = Field(default=0, ge=0)
    #: Where a worker (``wastecoach worker``) serves its Prometheus metrics, on every address;
    #: 0 serves none. The API process serves its own at ``GET /metrics`` on ``port``.
    metrics_port: int = Field(default=9808, ge=0, le=65535)
    log_level: str = "info"
    #: ``module:callable`` returning the scan stages, for tests and benchmarks that run the
    #: pipeline with stand-in stages; unset, the real stages are used.
    stages_factory: str | None = None

    s3: S3Settings = Field(default_factory=S3Settings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    openai: OpenAISettings = Field(default_factory=OpenAISettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    session: SessionSettings = Field(default_factory=SessionSettings)
    uploads: UploadSettings = Field(default_factory=UploadSettings)
    accounts: AccountsSettings = Field(default_factory=AccountsSettings)

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str) -> str:
        # uvicorn takes anything it cannot parse (a typo, a network with host bits set) as a
        # literal host name that never matches, so a mistake would silently trust no proxy and
        # count every client as the balancer: refuse it here, and hand uvicorn canonical forms.
        items = [item.strip() for item in value.split(",") if item.strip()]
        if "*" in items:
            return "*"
        canonical = []
        for item in items:
            try:
                if "/" in item:
                    canonical.append(str(ipaddress.ip_network(item, strict=False)))
                else:
                    canonical.append(str(ipaddress.ip_address(item)))
            except ValueError as exc:
                raise ValueError(
                    f"trusted_proxies: {item!r} is not an address, a network or '*'"
                ) from exc
        return ",".join(canonical)

    @model_validator(mode="after")
    def _distributed_needs_secrets(self) -> Settings:
        if self.mode is Mode.DISTRIBUTED:
            if self.database_url is None:
                raise ValueError("WASTECOACH_DATABASE_URL is required in distributed mode")
            if self.auth.jwt_secret is None:
                raise ValueError("WASTECOACH_AUTH__JWT_SECRET is required in distributed mode")
        return self

    @property
    def embedded(self) -> bool:
        return self.mode is Mode.EMBEDDED

    @property
    def guest_enabled(self) -> bool:
        if self.auth.guest_enabled is not None:
            return self.auth.guest_enabled
        return self.embedded

    @property
    def public_base_url(self) -> str:
        """``public_url`` when set; else where ``serve`` listens, ``http://host:port``, with
        the loopback address for a wildcard host (0.0.0.0, ::), which no client can reach."""
        if self.public_url:
            return self.public_url
        return f"http://{_url_host(self.host)}:{self.port}"

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'wastecoach.db'}"


def _url_host(host: str) -> str:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host or "127.0.0.1"  # a name; empty listens everywhere, as uvicorn reads it
    if ip.is_unspecified:
        return "127.0.0.1" if ip.version == 4 else "localhost"
    return f"[{ip}]" if ip.version == 6 else str(ip)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
