"""Object storage for uploaded images: S3 (distributed) or a local folder (embedded).

Both hand out a time-limited PUT URL bound to one key, one content type and one exact size, so
the client uploads straight to storage and the server never buffers the body (S3), or checks
the same limits itself (local). A URL writes its key once: S3 is asked for a conditional write
(``If-None-Match: *``, a signed header, so a client cannot leave it out), the local folder
links the file into place only if nothing is there. Either way a second PUT to a key that holds
anything, even an empty file, is refused; :mod:`server.uploads.service` relies on that.
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
from server.errors import Forbidden, InvalidInput, NotFound


@dataclass(frozen=True, slots=True)
class UploadTicket:
    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)
    expires_at: float = 0.0


class Storage(Protocol):
    async def presign_put(
        self, key: str, *, content_type: str, size: int, ttl_s: int
    ) -> UploadTicket: ...

    async def get(self, key: str, *, max_bytes: int) -> bytes: ...

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        """Write ``key`` (server side: no condition, an existing object is replaced)."""

    async def delete(self, key: str) -> None: ...


def _used() -> Forbidden:
    return Forbidden(
        "this upload URL has been used already; create a new upload",
        code=ErrorCode.UPLOAD_FORBIDDEN,
    )


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
        # ContentType, ContentLength and IfNoneMatch become signed headers: S3 refuses an
        # upload whose type or length differs from what the server allowed, or that leaves
        # out the condition, and the condition makes it refuse (412) a PUT to a key that
        # exists: the URL writes once.
        url = await asyncio.to_thread(
            self._client.generate_presigned_url,
            "put_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ContentType": content_type,
                "ContentLength": size,
                "IfNoneMatch": "*",
            },
            ExpiresIn=ttl_s,
            HttpMethod="PUT",
        )
        return UploadTicket(
            url=url,
            method="PUT",
            headers={
                "Content-Type": content_type,
                "Content-Length": str(size),
                "If-None-Match": "*",
            },
            expires_at=time.time() + ttl_s,
        )

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

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        await asyncio.to_thread(
            self._client.put_object,
            Bucket=self.bucket, Key=key, Body=data, ContentType=content_type,
        )

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
        # Bytes, not str: compare_digest refuses a str with non-ASCII characters (a TypeError,
        # which was a 500 for a forged signature).
        return (
            hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))
            and expires >= time.time()
        )

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
        """Write exactly ``size`` bytes atomically, once: refuses a body of any other length,
        and a key that holds a file already (the local twin of S3's ``If-None-Match: *``)."""
        path = self._path(key)
        if path.exists():  # the common case, answered before reading a body
            raise _used()
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
            try:
                # link(), unlike replace(), fails when the name exists: two PUTs racing on
                # one URL store one file.
                os.link(tmp, path)
            except FileExistsError:
                raise _used() from None
        finally:
            os.unlink(tmp)
        return written

    async def get(self, key: str, *, max_bytes: int) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"upload {key!r} does not exist", code=ErrorCode.UPLOAD_NOT_FOUND)
        if path.stat().st_size > max_bytes:
            raise InvalidInput(f"upload {key!r} is larger than {max_bytes} bytes")
        return await asyncio.to_thread(path.read_bytes)

    async def put(self, key: str, data: bytes, *, content_type: str) -> None:
        path = self._path(key)

        def _write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".put-")
            try:
                with os.fdopen(fd, "wb") as out:
                    out.write(data)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise

        await asyncio.to_thread(_write)

    async def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
