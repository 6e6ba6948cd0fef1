"""Object storage for uploaded images: S3 (distributed) or a local folder (embedded).

Both hand out a time-limited PUT URL bound to one key, one content type and one exact size, so
the client uploads straight to storage and the server never buffers the body (S3), or checks
the same limits itself (local).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from protocol.messages import ErrorCode
from server.errors import InvalidInput, NotFound


@dataclass(frozen=True, slots=True)
class UploadTicket:
    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)
    expires_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    size: int
    content_type: str | None


class Storage(Protocol):
    async def presign_put(
        self, key: str, *, content_type: str, size: int, ttl_s: int
    ) -> UploadTicket: ...

    async def head(self, key: str) -> ObjectInfo | None: ...

    async def get(self, key: str, *, max_bytes: int) -> bytes: ...

    async def delete(self, key: str) -> None: ...


class S3Storage:
    def __init__(
        self,
        *,
        bucket: str,
        region: str,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self._client: Any = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(signature_version="s3v4", retries={"max_attempts": 3}),
        )

    async def ensure_bucket(self) -> None:
        def _ensure() -> None:
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError:
                self._client.create_bucket(
                    Bucket=self.bucket,
                    CreateBucketConfiguration={
                        "LocationConstraint": self._client.meta.region_name
                    },
                )

        await asyncio.to_thread(_ensure)

    async def presign_put(
        self, key: str, *, content_type: str, size: int, ttl_s: int
    ) -> UploadTicket:
        # ContentType and ContentLength become signed headers: S3 refuses an upload whose
        # type or length differs from what the server allowed.
        url = await asyncio.to_thread(
            self._client.generate_presigned_url,
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": size,
            },
            ExpiresIn=ttl_s,
            HttpMethod="PUT",
        )
        return UploadTicket(
            url=url,
            method="PUT",
            headers={"Content-Type": content_type, "Content-Length": str(size)},
            expires_at=time.time() + ttl_s,
        )

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            response = await asyncio.to_thread(
                self._client.head_object, Bucket=self.bucket, Key=key
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise
        return ObjectInfo(int(response["ContentLength"]), response.get("ContentType"))

    async def get(self, key: str, *, max_bytes: int) -> bytes:
        def _get() -> bytes:
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                raise NotFound(
                    f"upload {key!r} does not exist", code=ErrorCode.UPLOAD_NOT_FOUND
                ) from exc
            if int(response["ContentLength"]) > max_bytes:
                raise InvalidInput(f"upload {key!r} is larger than {max_bytes} bytes")
            body: bytes = response["Body"].read(max_bytes + 1)
            return body

        return await asyncio.to_thread(_get)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._client.delete_object, Bucket=self.bucket, Key=key)


class LocalStorage:
    """Files under a folder; PUT URLs point at the server's own local-upload endpoint."""

    def __init__(self, root: Path, *, public_url: str, secret: bytes) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._public_url = public_url.rstrip("/")
        self._secret = secret

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()) or ".." in key.split("/"):
            raise InvalidInput("invalid upload key")
        return path

    def signature(self, key: str, content_type: str, size: int, expires: int) -> str:
        message = f"{key}\n{content_type}\n{size}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def check_signature(
        self, key: str, content_type: str, size: int, expires: int, signature: str
    ) -> bool:
        expected = self.signature(key, content_type, size, expires)
        return hmac.compare_digest(expected, signature) and expires >= time.time()

    async def presign_put(
        self, key: str, *, content_type: str, size: int, ttl_s: int
    ) -> UploadTicket:
        expires = int(time.time()) + ttl_s
        query = urlencode(
            {
                "content_type": content_type,
                "size": size,
                "expires": expires,
                "sig": self.signature(key, content_type, size, expires),
            }
        )
        return UploadTicket(
            url=f"{self._public_url}/api/v1/uploads/local/{quote(key)}?{query}",
            method="PUT",
            headers={"Content-Type": content_type, "Content-Length": str(size)},
            expires_at=float(expires),
        )

    async def write_stream(self, key: str, chunks: AsyncIterator[bytes], *, size: int) -> int:
        """Write exactly ``size`` bytes atomically; refuses a body of any other length."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        written = 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    written += len(chunk)
                    if written > size:
                        raise InvalidInput(f"the body is longer than the declared {size} bytes")
                    out.write(chunk)
            if written != size:
                raise InvalidInput(f"the body has {written} bytes, not the declared {size}")
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        return written

    async def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        if not path.is_file():
            return None
        return ObjectInfo(path.stat().st_size, None)

    async def get(self, key: str, *, max_bytes: int) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"upload {key!r} does not exist", code=ErrorCode.UPLOAD_NOT_FOUND)
        if path.stat().st_size > max_bytes:
            raise InvalidInput(f"upload {key!r} is larger than {max_bytes} bytes")
        return await asyncio.to_thread(path.read_bytes)

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
