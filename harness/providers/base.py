"""The one interface every provider speaks: send a request body, get vectors or a typed error.

The execution engine (`harness.execute`) owns concurrency, limits, retries, the cache and
resume; a provider only knows its wire protocol. The API key lives inside the provider's
client and never in a value that can be written (`Embedded`, `ProviderError`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from harness.errors import ExitCode, Failure

if TYPE_CHECKING:
    from harness.catalog.load import ModelInfo
    from harness.inputs.types import Input


@dataclass(frozen=True)
class Request:
    """What one request carries, before a wire protocol shapes it into a body (`request_body`)."""

    model: ModelInfo
    inputs: list[Input]
    dimension: int | None           # the vector length to ask for (None: the model's fixed size, nothing sent)
    parameters: dict                # the spec's, for this model
    fused: bool = False             # one input whose parts fuse into one vector (enable_fusion)
    upload: bool = False            # local files over the model's data-URI limit go through temporary storage


@dataclass
class Embedded:
    """What came back for one request, vectors in the order of the request's inputs."""

    vectors: list[list[float]]
    usage: dict[str, Any] = field(default_factory=dict)
    request_id: str | None = None
    status: int = 200
    uploads: list[dict[str, Any]] = field(default_factory=list)   # oss:// URLs sent in place of local files
    replica: str | None = None     # which of a model's replicas answered (only when it has several)


class ProviderError(Failure):
    """A failed request. `retryable` decides whether the engine tries again;
    `fatal` means every other request will fail the same way (bad key, wrong region,
    unknown model), so the engine stops the run early; `fatal_when_exhausted` means so once the
    retries of this request have run out (every replica of a model down)."""

    exit_code = ExitCode.PROVIDER_ERROR


    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        retryable: bool = False,
        fatal: bool = False,
        retry_after: float | None = None,
        throttled: bool = False,
        fatal_when_exhausted: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id
        self.retryable = retryable
        self.fatal = fatal
        self.retry_after = retry_after
        self.throttled = throttled
        self.uploads: list[dict[str, Any]] = []   # oss:// URLs the failed request named (DashScope uploads)
        self.fatal_when_exhausted = fatal_when_exhausted

    def describe(self) -> str:
        bits = [f"HTTP {self.status}" if self.status else None, self.code, self.message,
                f"request_id={self.request_id}" if self.request_id else None]
        return ": ".join(b for b in bits if b)


class Provider(Protocol):
    protocol: str      # "dashscope" | "openai" | "local"
    endpoint: str      # the URL (or "local://<name>") requests go to; part of the cache key

    async def send(self, body: dict[str, Any], expected: int, data: bytes | None = None) -> Embedded:
        """Send one request body; return exactly `expected` vectors or raise ProviderError.
        `data`: the body as the payload file holds it (canonical JSON), sent as is when given."""
        ...

    def tokens(self, body: dict[str, Any], info: Any) -> int:
        """Input tokens `body` will likely cost (`info`: the catalog's model, or None), for the TPM limiter."""
        ...

    def clean(self, got: Embedded) -> Embedded:
        """What may be kept of an answer (no key, bounded): also applied to answers read from the cache."""
        ...

    async def aclose(self) -> None:
        ...


class NotExecutable(Failure):
    """A cell that cannot run here (no key, optional package missing); the run goes on
    with the other cells and says which were skipped and why."""

    exit_code = ExitCode.NOTHING_EXECUTED


# Each provider class also offers:
#   @classmethod
#   def from_cell(cls, cell: dict, options: "harness.execute.ExecuteOptions") -> Provider
# where `cell` is the cell's entry in manifest.json ("id", "model", "provider", "endpoint",
# "dimension", "api_key_env", "required", ...). It raises NotExecutable with a reason a
# person can act on (e.g. "no DashScope API key: set DASHSCOPE_API_KEY, or ...").
# And what its protocol puts on the wire, the dimension included (the plan writes these bodies):
#   request_body(request: Request) -> dict                     the exact body of one request
#   request_parameters(parameters: dict, dimension) -> dict    the `parameters` a cell's manifest entry records
#   dimension_field: str                                       where a body carries the dimension
#   dimension_problems(body: dict, dimension) -> list[str]     what is wrong with the dimension in a body
