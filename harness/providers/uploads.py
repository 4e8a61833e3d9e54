"""Local files through DashScope's temporary storage (`upload_local_files: true`).

The protocol is the official SDK's (`dashscope/utils/oss_utils.py`), written anew here:

1. `GET {base}/uploads?action=getPolicy&model=<model>` with the API key → `data` (or `output`):
   `policy, signature, upload_dir, upload_host, oss_access_key_id, x_oss_object_acl,
   x_oss_forbid_overwrite`.
2. A multipart form POST to `upload_host`: `OSSAccessKeyId, Signature, policy,
   key=<upload_dir>/<file name>, x-oss-object-acl, x-oss-forbid-overwrite, success_action_status=200,
   x-oss-content-type, file`. The form carries the policy's signature, NEVER the API key: the
   storage host is not the API host and gets no Authorization header.
3. The request names the file `oss://<key>` and carries `X-DashScope-OssResourceResolve: enable`.
   The file lives 48 hours, bound to the model and the account; Beijing only.

Where the file may go: the storage host the policy names must be an Alibaba Cloud host over
https (`*.aliyuncs.com`), the API endpoint's own host, or a host allowed outside the spec
(`--allow-host`, `HARNESS_ALLOW_HOSTS`, `DASHSCOPE_HTTP_BASE_URL`); anything else is refused before a byte is sent.

The policy's signature, policy document and access key id are credentials for that one upload:
they are never written anywhere. What is kept (`UploadRecord`, `uploads.json` in the cache
folder) is the `oss://` URL and its expiry, keyed by the file's sha256, the model and the API
host, so a re-run within the 48 hours sends the same URL instead of uploading again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from harness.evidence import atomic_write
from harness.inputs.media import UPLOAD_PREFIX, open_regular, sniff, sniff_video
from harness.providers import wire
from harness.providers.base import ProviderError
from harness.providers.credentials import Destination, allowed_hosts, scrub

LIFETIME = 48 * 3600        # TMPURL: a temporary file is kept 48 hours
REUSE_MARGIN = 3600         # an upload with less than this left is not reused: the request may be retried late
UPLOAD_TIMEOUT = 3600.0     # the SDK's: a 50 MB video on a slow line
RECORD_FILE = "uploads.json"
RECORD_VERSION = 1
POLICY_FIELDS = ("policy", "signature", "upload_dir", "upload_host", "oss_access_key_id",
                 "x_oss_object_acl", "x_oss_forbid_overwrite")
OFFICIAL_STORAGE_SUFFIX = ".aliyuncs.com"
# One lock per upload key and event loop, shared by every cell of a run (two dimensions of one
# model carry the same file), so a file is uploaded once however many requests want it at once.
_LOCKS: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]]" = weakref.WeakKeyDictionary()


def iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class UploadRecord:
    """`uploads.json`: (sha256, model, API host) → the `oss://` URL and when it expires. No secret
    goes in: the URL names an object only this account's key can have resolved."""

    def __init__(self, root: str | os.PathLike | None, clock: Callable[[], float] = time.time):
        self.path = Path(root) / RECORD_FILE if root is not None else None
        self.clock = clock

    @staticmethod
    def key(sha256: str, model: str, api_host: str) -> str:
        return f"{sha256} {model} {api_host}"

    def _load(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            doc = json.loads(self.path.read_bytes())
        except (OSError, ValueError):
            return {}
        entries = doc.get("entries") if isinstance(doc, dict) and doc.get("v") == RECORD_VERSION else None
        return entries if isinstance(entries, dict) else {}

    def get(self, key: str) -> dict[str, Any] | None:
        """The recorded upload when it still has REUSE_MARGIN to live, else None."""
        entry = self._load().get(key)
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str) \
                or not isinstance(entry.get("expires"), (int, float)):
            return None
        return entry if entry["expires"] - self.clock() > REUSE_MARGIN else None

    def put(self, key: str, url: str | None, expires: float = 0) -> None:
        """Record `url` under `key`; None forgets the key."""
        if self.path is None:
            return
        now = self.clock()
        entries = {k: v for k, v in self._load().items()   # expired entries are dropped as we go
                   if isinstance(v, dict) and isinstance(v.get("expires"), (int, float)) and v["expires"] > now}
        if url is None:
            entries.pop(key, None)
        else:
            entries[key] = {"url": url, "expires": int(expires), "expires_at": iso(expires)}
        try:
            atomic_write(self.path, json.dumps({"v": RECORD_VERSION, "entries": entries}, indent=1,
                                               sort_keys=True).encode(), fsync=False)
        except OSError:
            pass   # the record only saves a second upload; the run goes on without it


@dataclass
class Uploaded:
    sha256: str
    url: str
    expires: float
    reused: bool

    def evidence(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "url": self.url, "expires_at": iso(self.expires), "reused": self.reused}


def placeholders(value: Any, found: set[str]) -> set[str]:
    """The sha256 of every upload placeholder in a request body."""
    if isinstance(value, str):
        if value.startswith(UPLOAD_PREFIX):
            found.add(value[len(UPLOAD_PREFIX):])
    elif isinstance(value, list):
        for v in value:
            placeholders(v, found)
    elif isinstance(value, dict):
        for v in value.values():
            placeholders(v, found)
    return found


def substitute(value: Any, urls: dict[str, str]) -> Any:
    """`value` with every placeholder replaced by its `oss://` URL."""
    if isinstance(value, str):
        return urls.get(value[len(UPLOAD_PREFIX):], value) if value.startswith(UPLOAD_PREFIX) else value
    if isinstance(value, list):
        return [substitute(v, urls) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, urls) for k, v in value.items()}
    return value


class Uploader:
    """Uploads the local files of one DashScope cell (one model), once each per 48 hours."""

    def __init__(self, endpoint: str, model: str, *, api_key: str, headers: dict[str, str],
                 client: Callable[[], Any], files: dict[str, Path], record: UploadRecord,
                 api_timeout: float = 60.0, timeout: float = UPLOAD_TIMEOUT, allow_hosts: tuple | list = ()):
        parts = urlsplit(endpoint)
        # the policy lives beside the embedding service: {scheme}://{host}/api/v1/uploads
        root = endpoint[: endpoint.find("/services/")] if "/services/" in endpoint else endpoint.rstrip("/")
        self.policy_url = root + "/uploads"
        self.model = model
        self.api_host = parts.netloc
        self._api_key = api_key
        self._headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        self._client = client
        self.files = files
        self.record = record
        self.timeout = timeout
        self.api_timeout = api_timeout
        self.allowed = allowed_hosts((), extra=allow_hosts, base_url=root)

    def __repr__(self) -> str:
        return f"Uploader(model={self.model!r}, policy={self.policy_url!r})"

    async def resolve(self, body: dict[str, Any]) -> tuple[dict[str, Any], list[Uploaded]]:
        """`body` with its placeholders swapped for `oss://` URLs (uploading what is not recorded)."""
        wanted = sorted(placeholders(body, set()))
        if not wanted:
            return body, []
        done = [await self.url_for(sha) for sha in wanted]
        return substitute(body, {u.sha256: u.url for u in done}), done

    async def url_for(self, sha256: str) -> Uploaded:
        key = UploadRecord.key(sha256, self.model, self.api_host)
        async with _LOCKS.setdefault(asyncio.get_running_loop(), {}).setdefault(key, asyncio.Lock()):
            entry = self.record.get(key)
            if entry is not None:
                return Uploaded(sha256, entry["url"], entry["expires"], True)
            data, name, mime = self._read(sha256)
            policy = await self._policy()
            url = await self._post(policy, data, name, mime)
            expires = self.record.clock() + LIFETIME
            self.record.put(key, url, expires)
            return Uploaded(sha256, url, expires, False)

    def forget(self, uploads: list[Uploaded]) -> None:
        """Drop recorded uploads the service did not resolve, so the next request uploads again."""
        for u in uploads:
            self.record.put(UploadRecord.key(u.sha256, self.model, self.api_host), None)

    def _read(self, sha256: str) -> tuple[bytes, str, str]:
        path = self.files.get(sha256)
        if path is None:
            raise ProviderError(f"no local file with sha256 {sha256[:12]}… is known to this run, so it cannot be "
                                "uploaded", code="UploadFileUnknown")
        try:
            with open_regular(Path(path).resolve()) as f:   # the file planned, or an error: never a FIFO's wait
                data = f.read()
        except OSError as e:
            raise ProviderError(f"cannot read {Path(path).name} to upload it ({e.strerror})",
                                code="UploadFileUnreadable") from None
        if hashlib.sha256(data).hexdigest() != sha256:
            raise ProviderError(f"{Path(path).name} changed since the run was planned (its sha256 differs); "
                                "run again", code="MediaChanged")
        kind = sniff(data[:64]) or sniff_video(data[:64])
        return data, Path(path).name, kind[1] if kind else "application/octet-stream"

    async def _request(self, doing: str, method: str, url: str, **kwargs: Any) -> Any:
        """One call to the API or the storage host; no answer or a dropped connection is retryable."""
        import httpx  # here, not at the top: see `wire`

        try:
            return await self._client().request(method, url, **kwargs)
        except httpx.TimeoutException:
            raise ProviderError(f"no answer {doing}", code="UploadTimeout", retryable=True) from None
        except httpx.HTTPError as exc:
            raise ProviderError(f"connection failed {doing} ({type(exc).__name__})", code="UploadConnectionError",
                                retryable=True) from None

    async def _policy(self) -> dict[str, Any]:
        resp = await self._request("asking for an upload policy", "GET", self.policy_url, headers=self._headers,
                                   timeout=self.api_timeout, params={"action": "getPolicy", "model": self.model})
        try:
            doc = json.loads(resp.content) if resp.content else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            doc = None
        request_id = doc.get("request_id") if isinstance(doc, dict) else None
        info = None
        if isinstance(doc, dict):
            info = doc.get("data") if isinstance(doc.get("data"), dict) else doc.get("output")
        if resp.status_code != 200 or not isinstance(info, dict) or (isinstance(doc, dict) and doc.get("code")):
            code = str(doc.get("code")) if isinstance(doc, dict) and doc.get("code") else f"HTTP{resp.status_code}"
            message = doc.get("message") if isinstance(doc, dict) and doc.get("message") else wire.snippet(resp.content)
            retryable = resp.status_code == 429 or resp.status_code >= 500
            hint = ("" if retryable else ": every upload of this model would be refused alike; send images as data "
                    "URIs (drop upload_local_files) or give public URLs")
            text = f"the upload policy was refused (HTTP {resp.status_code} {code}: {message}){hint}"
            for secret in [self._api_key, *_policy_secrets(info)]:   # a body may hold both an error and a policy
                text = scrub(text, secret)
            raise ProviderError(text, status=resp.status_code, code="UploadPolicyRefused",
                                request_id=request_id, retryable=retryable, fatal=not retryable,
                                throttled=resp.status_code == 429, retry_after=wire.retry_after(resp.headers))
        missing = [f for f in POLICY_FIELDS if not isinstance(info.get(f), (str, int, bool)) or info.get(f) == ""]
        if missing:
            raise ProviderError(f"the upload policy lacks {', '.join(missing)}", status=resp.status_code,
                                code="UploadPolicyMalformed", request_id=request_id, fatal=True)
        host = str(info["upload_host"])
        if not self._storage_allowed(host):
            d = Destination.of(host)
            raise ProviderError(f"the upload policy names the storage host {d.shown if d else repr(host[:80])}, "
                                "which is not an allowed host; nothing was uploaded (allowed: https://*.aliyuncs.com, "
                                "the API host, and hosts given by --allow-host or $HARNESS_ALLOW_HOSTS)",
                                code="UploadHostRefused", request_id=request_id, fatal=True)
        return info

    def _storage_allowed(self, url: str) -> bool:
        d = Destination.of(url)
        if d is None:
            return False
        return (d.scheme == "https" and d.host.endswith(OFFICIAL_STORAGE_SUFFIX)) or self.allowed.admits(url)

    async def _post(self, policy: dict[str, Any], data: bytes, name: str, mime: str) -> str:
        key = f"{str(policy['upload_dir']).rstrip('/')}/{name}"
        form = {"OSSAccessKeyId": str(policy["oss_access_key_id"]), "Signature": str(policy["signature"]),
                "policy": str(policy["policy"]), "key": key,
                "x-oss-object-acl": str(policy["x_oss_object_acl"]),
                "x-oss-forbid-overwrite": str(policy["x_oss_forbid_overwrite"]).lower(),
                "success_action_status": "200", "x-oss-content-type": mime}
        secrets = (self._api_key, *_policy_secrets(policy))
        # no Authorization here: the storage host gets the policy's signature, never the API key
        headers = {"User-Agent": self._headers.get("User-Agent", "mm-embed-harness"), "Accept": "application/json"}
        resp = await self._request(f"uploading {name}", "POST", str(policy["upload_host"]), data=form,
                                   headers=headers, files={"file": (name, data, mime)}, timeout=self.timeout)
        if resp.status_code not in (200, 204):
            text = wire.snippet(resp.content) if resp.content else "no body"
            for s in secrets:
                text = scrub(text, s)
            retryable = resp.status_code == 429 or resp.status_code >= 500
            raise ProviderError(f"uploading {name} to the temporary storage failed (HTTP {resp.status_code}: {text})",
                                status=resp.status_code, code="UploadFailed", retryable=retryable)
        return "oss://" + key


def _policy_secrets(info: Any) -> list[str]:
    """The credentials-like values of an upload policy: never in a message, a file or a log."""
    if not isinstance(info, dict):
        return []
    return [str(info[f]) for f in ("signature", "policy", "oss_access_key_id") if info.get(f)]

