"""The DynamoDB store's blob store: values larger than an item, as objects in an S3 bucket.

The bucket is ``FM_BLOB_BUCKET`` (template.yaml creates it, encrypted and
private, and passes its name to the functions) or the store URL's
``blob_bucket`` parameter. Object keys are the kernel's blob keys
(``{namespace}blob/{sha256}``); each object holds one value's JSON text.
The S3 client goes to the store URL's ``endpoint_url`` when one is given
(moto's server, which serves DynamoDB and S3 on one port), else to S3 in
the store's region. ``presigned_url`` hands out a time-limited GET link, so
the API on Lambda answers a value larger than its 6 MB response limit
with a redirect to S3 instead of the value itself.
"""
from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from flowmason.kernel.errors import StorageError, StoreUnavailableError
from flowmason.kernel.storage import BlobStore
from flowmason.kernel.storage_codec import check_blob_key

_MISSING = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "403"}

def make_s3_client(*, region: str, endpoint_url: str | None = None, attempts: int = 10) -> Any:
    """An S3 client, shared like the DynamoDB one (``store.shared_client``)."""
    from .store import shared_client

    # a local endpoint (127.0.0.1:PORT) has no bucket subdomains
    return shared_client("s3", region=region, endpoint_url=endpoint_url, attempts=attempts, read_timeout=60,
                         signature_version="s3v4", s3={"addressing_style": "path" if endpoint_url else "auto"})


class S3Blobs(BlobStore):
    def __init__(self, bucket: str, client: Any) -> None:
        self.bucket = bucket
        self.client = client
        self.url = f"s3://{bucket}"

    def _error(self, exc: Exception, key: str) -> StorageError:
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code, msg = str(err.get("Code", "")), err.get("Message", str(exc))
            if code == "NoSuchBucket":
                return StoreUnavailableError(
                    f"the S3 bucket {self.bucket} for large values does not exist ({msg})",
                    hint="deploy template.yaml (it creates the bucket), or set FM_BLOB_BUCKET to an existing bucket",
                )
            if code in _DENIED:
                return StoreUnavailableError(
                    f"access to S3 bucket {self.bucket} refused for {key} ({code}: {msg})",
                    hint="the role needs s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket's objects",
                )
            return StorageError(f"S3 {code} on s3://{self.bucket}/{key}: {msg}")
        if isinstance(exc, NoCredentialsError):
            return StoreUnavailableError("no AWS credentials found for S3",
                                         hint="set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or use a role")
        return StoreUnavailableError(f"cannot reach S3 for bucket {self.bucket}: {exc}",
                                     hint="check the endpoint_url/region and the network")

    def put(self, key: str, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise StorageError(f"blob data must be bytes, got {type(data).__name__} (key {key!r})")
        try:
            self.client.put_object(Bucket=self.bucket, Key=check_blob_key(key), Body=bytes(data),
                                   ContentType="application/json")
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key) from exc

    def _read(self, operation: str, key: str) -> Any:
        """One read request; None when the object does not exist."""
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, Key=check_blob_key(key))
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _MISSING:
                return None
            raise self._error(exc, key) from exc
        except BotoCoreError as exc:
            raise self._error(exc, key) from exc

    def get(self, key: str) -> bytes | None:
        answer = self._read("get_object", key)
        if answer is None:
            return None
        body = answer["Body"]
        try:
            return body.read()
        except BotoCoreError as exc:
            raise self._error(exc, key) from exc
        finally:
            body.close()

    def delete(self, key: str) -> bool:
        # S3's DeleteObject answers the same whether or not the key existed: ask first
        if self._read("head_object", key) is None:
            return False
        try:
            self.client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key) from exc
        return True

    def presigned_url(self, key: str, *, expires_s: int = 300) -> str | None:
        try:
            return self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": check_blob_key(key)}, ExpiresIn=expires_s)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(exc, key) from exc

    def create_bucket(self) -> None:
        """Create the bucket if it is missing (``create=1`` in the store URL: local stacks and tests)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) not in _MISSING | {"NoSuchBucket"}:
                raise self._error(exc, "") from exc
        region = self.client.meta.region_name
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._error(exc, "") from exc
