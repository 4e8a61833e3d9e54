"""DashScope (Model Studio) multimodal embeddings over HTTP.

Body (`request_body`): `{"model", "input": {"contents": [...]}, "parameters": {...}}` with
`dimension` and every other option INSIDE `parameters` (the public quick-start script put
`dimension` at the top level, which the API does not read). A local file a cell sends through
temporary storage (`upload_local_files`: every local video, and an image over the model's
per-image limit) is written as `upload:sha256:<hex>`, a stand-in tied to its bytes; it becomes the
`oss://` URL of the upload only in the bytes sent (below), so the payload file, the cache key and
what `verify` re-derives stay the same from one upload to the next.

Wire: `POST {base}/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding` with the
payload file's body as canonical JSON (byte-identical to the file), `Authorization: Bearer <key>`,
and `X-DashScope-WorkSpace` when a workspace is set. The answer is
`{"output": {"embeddings": [{"index", "embedding", "type"}]}, "usage", "request_id"}`; an error is
`{"code", "message", "request_id"}`, sometimes with HTTP 200 (the gateway does that), which is an
error all the same.

Every answer is checked before it is believed: one vector per expected input, indexes 0..n-1 each
once, length equal to the cell's dimension, finite JSON numbers (not `true`, not "0.5", none beyond a
float's range; JSON nested too deep to read is no answer either). A violation is a failed request
with the reason, never a crash of the run. Error classes (data below, not `if` chains): 429 →
retryable and throttled (honouring Retry-After); 408/5xx, timeouts, dropped connections and
truncated bodies → retryable; a bad key, a denied account, an unknown model, a wrong URL or a
redirect fail every request alike → fatal, so the engine stops at once instead of paying for (or
waiting out) the rest.

The key is resolved by `harness.providers.credentials`, lives in this object only, is never in its repr,
and is scrubbed from every field kept of an answer (message, code, request_id, usage), in case a
server echoes it. A redirect is not followed (the key would go along); the message says where it
pointed. Which hosts may receive the key at all is decided before this (`harness.plan.endpoints`).

A cell with `upload_local_files` sends its local files through DashScope's temporary storage
(`harness.providers.uploads`): the payload's `upload:sha256:…` stand-ins become `oss://` URLs in the bytes
sent (never in the payload file, the cache key or the log), the request carries
`X-DashScope-OssResourceResolve: enable`, and the URLs go to the response evidence (`uploads`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from harness import __version__
from harness.errors import Problem, ServiceError
from harness.evidence import canonical_json
from harness.providers import wire
from harness.providers.base import Embedded, NotExecutable, ProviderError, Request
from harness.providers.credentials import KeySource, find_api_key, missing_key_message, unsendable
from harness.providers.credentials import workspace as env_workspace
from harness.providers.tokens import estimate_tokens
from harness.providers.uploads import Uploader, UploadRecord
from harness.words import counted

if TYPE_CHECKING:
    import httpx

    from harness.inputs.types import Input, Part

DEFAULT_TIMEOUT = 60.0

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({301, 302, 303, 307, 308, 401, 403, 404})   # a redirect: wrong base URL
# Codes that fail every request of the run the same way, whatever the HTTP status.
FATAL_CODES = frozenset({
    "InvalidApiKey", "AccessDenied", "AccessDenied.Unpurchased", "Arrearage",
    "BadRequest.EmptyModel", "Model.NotExist", "ModelNotFound", "Model.AccessDenied",
})
# Phrases in a 400's message that mean the model is unknown here (wrong name or wrong region).
# Error codes that pass with time, for the errors a gateway sends behind an HTTP 200.
TRANSIENT_CODE_PREFIXES = ("Throttling", "InternalError", "ServiceUnavailable", "RequestTimeOut", "GatewayTimeout")
MODEL_UNKNOWN_PHRASES = ("model not exist", "model not found", "model does not exist", "no such model")
HINTS: dict[str, str] = {
    "auth": "the key was refused; DashScope keys are per region (a cn-beijing key fails on the "
            "Singapore endpoint and vice versa); key taken from {where}",
    "denied": "the key's account may not use this model: activate Model Studio for it, or check the "
              "workspace (X-DashScope-WorkSpace)",
    "model": "check the model name and the region: the qwen*-vl and 2026-03-06 models are served in "
             "cn-beijing only",
    "url": "check --base-url / DASHSCOPE_HTTP_BASE_URL: it should end in /api/v1",
    "arrears": "the Alibaba Cloud account is in arrears; top it up in the console",
    "throttled": "the model's quota was exceeded; lower --rpm/--tpm or --concurrency",
}


def wire_value(part: Part, request: Request) -> str:
    """What stands for `part` in the body: an image over the model's data-URI limit that goes through
    temporary storage is its `upload:sha256:` stand-in."""
    image, limit = part.image, request.model.image_max_bytes
    if request.upload and image is not None and limit and image.size > limit:
        return image.placeholder()
    return part.wire()


def content_items(inp: Input, request: Request) -> list[dict[str, Any]]:
    """The `input.contents` items one input becomes for the request's model."""
    if inp.modality == "multi_images":
        return [{"multi_images": [wire_value(p, request) for p in inp.parts]}]
    if inp.modality == "fused":
        if request.model.fusion == "enable_fusion":
            return [{p.kind: wire_value(p, request)} for p in inp.parts]
        return [{p.kind: wire_value(p, request) for p in inp.parts}]
    part = inp.parts[0]
    return [{part.kind: wire_value(part, request)}]


class DashScopeProvider(wire.KeptAnswers):
    protocol = "dashscope"
    dimension_field = "parameters.dimension"    # the only place the API reads it

    @staticmethod
    def request_parameters(parameters: dict, dimension: int | None) -> dict:
        return dict(parameters) if dimension is None else {**parameters, "dimension": dimension}

    @classmethod
    def request_body(cls, request: Request) -> dict[str, Any]:
        # a text input (most inputs of a big run: its one part is a text, no file) is `{"text": value}`,
        # as content_items makes it
        contents = [item for inp in request.inputs for item in
                    ([{"text": inp.parts[0].value}] if inp.modality == "text" else content_items(inp, request))]
        parameters = cls.request_parameters(request.parameters, request.dimension)
        if request.fused:
            parameters["enable_fusion"] = True
        return {"model": request.model.wire_model, "input": {"contents": contents}, "parameters": parameters}

    @staticmethod
    def dimension_problems(body: dict, dimension: int | None) -> list[str]:
        out = []
        if "dimension" in body:
            out.append("`dimension` at the top level of the body (the API reads it only inside `parameters`)")
        sent = body.get("parameters", {}).get("dimension")
        if sent != dimension:
            out.append(f"parameters.dimension is {sent}, expected {dimension}")
        return out

    def __init__(self, endpoint: str, *, api_key: str, dimension: int | None, model: str | None = None,
                 key_source: KeySource | None = None, workspace: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, client: httpx.AsyncClient | None = None,
                 max_connections: int | None = None, uploads: dict[str, Any] | None = None):
        self.endpoint = endpoint
        self.dimension = dimension
        self.model = model
        self.workspace = workspace
        self.timeout = timeout
        self.key_source = key_source
        self._api_key = api_key
        self._http = wire.ClientSlot(client, timeout, max_connections)
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"mm-embed-harness/{__version__}",
        }
        if workspace:
            self._headers["X-DashScope-WorkSpace"] = workspace
        self.uploader = None
        if uploads is not None:   # {"files": {sha256: path}, "record": UploadRecord, "model": wire model}
            self.uploader = Uploader(endpoint, uploads.get("model") or model or "", api_key=api_key,
                                     headers=self._headers, client=self._http.get, files=uploads["files"],
                                     record=uploads["record"], api_timeout=timeout,
                                     allow_hosts=uploads.get("allow_hosts", ()))

    def __repr__(self) -> str:
        where = self.key_source.where if self.key_source else "argument"
        return (f"DashScopeProvider(endpoint={self.endpoint!r}, model={self.model!r}, "
                f"dimension={self.dimension}, key from {where})")

    @classmethod
    def from_cell(cls, cell: dict, options: Any = None) -> "DashScopeProvider":
        endpoint = cell.get("endpoint") or ""
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise NotExecutable(f"{cell.get('model')}: no usable DashScope endpoint ({endpoint or 'none'}); "
                                "give the spec a region or pass --base-url")
        found = find_api_key()
        if found is None:
            raise NotExecutable(missing_key_message())
        key, source = found
        workspace, origin = getattr(options, "workspace", None), "--workspace"
        if not workspace:
            workspace, origin = env_workspace() or (None, "")
        bad = unsendable(workspace) if workspace else None
        if bad:   # `run --workspace` refuses it as a usage error first; this is the environment's
            raise ServiceError(Problem(f"{origin} holds {bad}, which an HTTP header cannot carry; "
                                       "nothing was sent", hint="set it to the workspace id (printable ASCII)"))
        concurrency = getattr(options, "concurrency", None)
        uploads = None
        if cell.get("upload_local_files"):
            cache_dir = getattr(options, "cache_dir", None)
            uploads = {"files": dict(getattr(options, "local_files", None) or {}),
                       "record": UploadRecord(cache_dir), "model": cell.get("wire_model") or cell.get("model"),
                       "allow_hosts": tuple(getattr(options, "allow_hosts", None) or ())}
        return cls(endpoint, api_key=key, key_source=source, dimension=cell.get("dimension"),
                   model=cell.get("model"), workspace=workspace, uploads=uploads,
                   timeout=float(getattr(options, "timeout", None) or DEFAULT_TIMEOUT),
                   client=getattr(options, "http_client", None),
                   max_connections=int(concurrency) if concurrency else None)

    async def aclose(self) -> None:
        await self._http.aclose()

    def tokens(self, body: dict[str, Any], info: Any) -> int:
        raw = body.get("input") or []
        return estimate_tokens(raw.get("contents") or [] if isinstance(raw, dict) else raw,
                               body.get("parameters") or {}, info)

    async def _send(self, body: dict[str, Any], expected: int, data: bytes | None = None) -> Embedded:
        import httpx  # here, not at the top: see `wire`

        uploaded = []
        if self.uploader is not None:      # the stand-ins become oss:// URLs: the bytes sent change
            body, uploaded = await self.uploader.resolve(body)
            data = None
        data = canonical_json(body) if data is None else data
        headers = self._headers
        if b'"oss://' in data:  # temporary OSS URLs are resolved only when asked to
            headers = {**headers, "X-DashScope-OssResourceResolve": "enable"}
        try:
            resp = await self._http.get().post(self.endpoint, content=data, headers=headers,
                                           timeout=self.timeout)
        except httpx.TimeoutException:
            raise ProviderError(f"no answer within {self.timeout:g}s from {urlsplit(self.endpoint).netloc}",
                                code="Timeout",
                                retryable=True) from None
        except httpx.TransportError as exc:
            raise ProviderError(f"connection to {urlsplit(self.endpoint).netloc} failed or dropped "
                                f"({type(exc).__name__}: "
                                f"{str(exc) or 'closed without a complete answer'})",
                                code="ConnectionError", retryable=True) from None
        try:
            got = parse_response(resp.status_code, resp.content, resp.headers, expected, self.dimension)
            got.uploads = [u.evidence() for u in uploaded]
            return got
        except ProviderError as exc:
            exc.uploads = [u.evidence() for u in uploaded]   # sent all the same: evidence of the failure too
            stale = [u for u in uploaded if u.reused]
            if exc.status == 400 and stale and self.uploader is not None:
                # a recorded oss:// URL the service no longer resolves (purged early, or the file of another
                # account's key): forgotten, so the retry uploads afresh
                self.uploader.forget(stale)
                exc.retryable = True
            if exc.status in (401, 403) or exc.code == "InvalidApiKey":
                where = self.key_source.where if self.key_source else "the caller"
                exc.message = f"{exc.message} ({HINTS['auth' if exc.status == 401 else 'denied'].format(where=where)})"
                exc.args = (exc.message,)
            raise


def parse_response(status: int, content: bytes, headers: Any, expected: int,
                   dimension: int | None) -> Embedded:
    """The body of one answer → `Embedded` (vectors as a float64 array, rows by index) or ProviderError."""
    try:
        doc = wire.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        doc = None
        if status == 200:  # a body cut short is as transient as a dropped connection
            raise ProviderError(f"HTTP 200 with a body that is not JSON ({wire.snippet(content)})", status=status,
                                code="MalformedResponse", retryable=True) from None
    except RecursionError:
        doc = None
        if status == 200:  # the same bytes again would nest as deep: not retried
            raise ProviderError(f"HTTP 200 with JSON nested too deeply to read ({wire.snippet(content)})",
                                status=status, code="MalformedResponse") from None
    request_id = doc.get("request_id") if isinstance(doc, dict) else None
    request_id = request_id or headers.get("x-request-id") or headers.get("x-dashscope-request-id")
    if status != 200 or (isinstance(doc, dict) and doc.get("code")):
        raise _error(status, doc, content, headers, request_id)
    if not isinstance(doc, dict):
        raise ProviderError("the answer is not a JSON object", status=status, code="MalformedResponse",
                            request_id=request_id)
    items = (doc.get("output") or {}).get("embeddings") if isinstance(doc.get("output"), dict) else None
    if not isinstance(items, list):
        raise ProviderError("the answer has no output.embeddings list", status=status,
                            code="MalformedResponse", request_id=request_id)

    def bad(code: str, message: str) -> ProviderError:
        return ProviderError(message, status=status, code=code, request_id=request_id)

    if len(items) != expected:
        got = sorted(i.get("index") for i in items if isinstance(i, dict) and isinstance(i.get("index"), int))
        missing = [i for i in range(expected) if i not in set(got)]
        raise bad("MissingIndex" if len(items) < expected else "ExtraVectors",
                  f"{counted(len(items), 'vector')} for {counted(expected, 'input')}"
                  + (f" (missing indexes {wire.ranges(missing)})" if missing else ""))
    fast = wire.fast_rows(items, expected, dimension)
    if fast is not None:
        matrix = wire.number_matrix(fast)
        if matrix is not None:
            usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
            return Embedded(vectors=matrix, usage=usage, request_id=request_id, status=status)
    rows: list[Any] = [None] * expected
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < expected:
            raise bad("MissingIndex", f"an embedding has no valid index (got {index!r}, expected 0..{expected - 1})")
        if rows[index] is not None:
            raise bad("DuplicateIndex", f"index {index} appears twice")
        vec = item.get("embedding")
        if not isinstance(vec, list):
            raise bad("MalformedResponse", f"embedding {index} is not a list of numbers")
        other = wire.first_non_number(vec)
        if other:
            raise bad("MalformedResponse", f"embedding {index} holds {other} where a number belongs")
        if dimension and len(vec) != dimension:
            raise bad("WrongDimension", f"embedding {index} has {len(vec)} numbers, expected {dimension}")
        rows[index] = vec
    import numpy as np  # only on this slow path (see `wire`)

    try:
        matrix = np.array(rows, dtype=np.float64)
    except OverflowError:
        row = next(i for i, v in enumerate(rows) if any(abs(x) > 1e308 for x in v))
        raise bad("MalformedResponse", f"embedding {row} holds a number too large for a float") from None
    except (TypeError, ValueError):
        raise bad("MalformedResponse", "an embedding holds something other than numbers") from None
    if matrix.ndim != 2:
        raise bad("WrongDimension", "the embeddings do not all have the same length")
    if not np.isfinite(matrix).all():
        row = int(np.nonzero(~np.isfinite(matrix).all(axis=1))[0][0])
        raise bad("NonFinite", f"embedding {row} contains NaN or infinity")
    usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
    return Embedded(vectors=matrix, usage=usage, request_id=request_id, status=status)


def _error(status: int, doc: Any, content: bytes, headers: Any, request_id: str | None) -> ProviderError:
    code = message = None
    if isinstance(doc, dict):
        code = doc.get("code") or None
        message = doc.get("message") or doc.get("msg")
    code = str(code) if code is not None else None
    if not message:
        message = wire.snippet(content) if content else "no body"
    lowered = str(message).lower()
    model_unknown = any(p in lowered for p in MODEL_UNKNOWN_PHRASES) or code in ("Model.NotExist", "ModelNotFound")
    retry_after = wire.retry_after(headers)
    hint = None
    if model_unknown:
        hint = HINTS["model"]
    elif 300 <= status < 400:
        hint = wire.redirect_hint(headers)
    elif status == 404:
        hint = HINTS["url"]
    elif code == "Arrearage":
        hint = HINTS["arrears"]
    if status == 429:
        return ProviderError(str(message), status=status, code=code or "Throttling", request_id=request_id,
                             retryable=True, throttled=True, retry_after=retry_after)
    if status in RETRYABLE_STATUS or status >= 500:
        return ProviderError(str(message), status=status, code=code or f"HTTP{status}", request_id=request_id,
                             retryable=True, retry_after=retry_after)
    fatal = status in FATAL_STATUS or code in FATAL_CODES or model_unknown
    if status == 200 and not fatal and code and code.startswith(TRANSIENT_CODE_PREFIXES):
        # a business error behind a 200 (the gateway does that), of a kind that passes
        throttled = code.startswith("Throttling")
        return ProviderError(str(message), status=status, code=code, request_id=request_id, retryable=True,
                             throttled=throttled, retry_after=retry_after)
    text = f"{message} ({hint})" if hint else str(message)
    return ProviderError(text, status=status, code=code or f"HTTP{status}", request_id=request_id, fatal=fatal)
