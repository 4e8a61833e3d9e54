"""The DashScope provider against a real HTTP server on 127.0.0.1 speaking the wire protocol:
what it sends, what it believes, and how each kind of failure is typed."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from harness.providers.base import ProviderError
from harness.providers.dashscope import DashScopeProvider
from harness.providers.registry import provider_class
from tests.helpers import dashscope_fixture
from tests.servers.dashscope_server import vector

KEY = "sk-provider-test-5f1e2d3c"
TEXTS = [{"text": "A cat sitting on a red chair"}, {"text": "一只猫坐在红色的椅子上"}]


server = dashscope_fixture(KEY)


@pytest.fixture(autouse=True)
def clean(server, monkeypatch):
    server.reset()
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    monkeypatch.delenv("DASHSCOPE_WORKSPACE", raising=False)
    yield
    server.settle()


def provider(server, model="qwen3-vl-embedding", dimension=1024, **kw) -> DashScopeProvider:
    cell = {"id": f"{model}-{dimension}", "model": model, "provider": "dashscope", "endpoint": server.url,
            "dimension": dimension, "required": True}
    options = type("Opts", (), {"timeout": kw.pop("timeout", 5.0), "workspace": kw.pop("workspace", None),
                                "concurrency": 4})()
    return provider_class("dashscope").from_cell(cell, options)


def send(p: DashScopeProvider, body: dict, expected: int):
    async def go():
        try:
            return await p.send(body, expected)
        finally:
            await p.aclose()
    return asyncio.run(go())


def body(contents=TEXTS, model="qwen3-vl-embedding", **params):
    out = {"model": model, "input": {"contents": contents}}
    if params:
        out["parameters"] = params
    return out


def failure(server, kind, **fault) -> ProviderError:
    server.add_fault(kind, **fault)
    with pytest.raises(ProviderError) as info:
        send(provider(server), body(dimension=1024), 2)
    return info.value


def test_vectors_come_back_in_order_with_the_requested_dimension(server):
    got = send(provider(server), body(dimension=1024), 2)
    assert got.vectors.shape == (2, 1024) and got.status == 200 and got.request_id
    for row, item in zip(got.vectors, TEXTS):
        np.testing.assert_allclose(row, vector(item, 1024))
    assert got.usage["total_tokens"] == got.usage["input_tokens"] + got.usage["image_tokens"]
    logged = server.log[-1]
    assert logged.body == body(dimension=1024) and logged.status == 200


def test_default_dimension_and_fusion(server):
    got = send(provider(server, dimension=2560), body(), 2)           # no parameters.dimension → 2560
    assert got.vectors.shape == (2, 2560)
    fused = send(provider(server), body(dimension=1024, enable_fusion=True), 1)
    np.testing.assert_allclose(fused.vectors[0], vector(TEXTS, 1024))
    item = {"text": "a cat", "image": "https://example.com/cat.png"}
    tongyi = "tongyi-embedding-vision-plus-2026-03-06"
    one = send(provider(server, model=tongyi, dimension=512), body([item], model=tongyi, dimension=512), 1)
    np.testing.assert_allclose(one.vectors[0], vector(item, 512))
    assert one.usage["input_tokens_details"]["image_tokens"] > 0


def test_workspace_header_is_sent(server):
    send(provider(server, workspace="llm-ws-42"), body(dimension=1024), 2)
    assert server.log[-1].workspace == "llm-ws-42"


def test_wrong_key_is_fatal_with_code_request_id_and_hint_but_not_the_key(server, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-wrong-key-777")
    with pytest.raises(ProviderError) as info:
        send(provider(server), body(dimension=1024), 2)
    err = info.value
    assert (err.status, err.code, err.fatal, err.retryable) == (401, "InvalidApiKey", True, False)
    assert err.request_id and "per region" in err.message and "$DASHSCOPE_API_KEY" in err.message
    assert "sk-wrong-key-777" not in err.describe() and "sk-wrong-key-777" not in repr(err)


@pytest.mark.parametrize("kind, status, code, throttled, retry_after", [
    ("429", 429, "Throttling", True, None),
    ("429-retry-after", 429, "Throttling.RateQuota", True, 2.0),
    ("500", 500, "InternalError", False, None),
    ("503", 503, "ServiceUnavailable", False, None),
    ("error-200", 200, "InternalError.Algo", False, None),
])
def test_transient_errors_are_retryable(server, kind, status, code, throttled, retry_after):
    err = failure(server, kind, retry_after=2)
    assert (err.status, err.code, err.retryable, err.fatal) == (status, code, True, False)
    assert err.throttled is throttled and err.retry_after == retry_after and err.request_id


def test_timeout_and_dropped_connection_are_retryable(server):
    server.add_fault("slow", delay=1.0)      # the client gives up at 0.3 s; the teardown waits for the rest
    with pytest.raises(ProviderError) as info:
        send(provider(server, timeout=0.3), body(dimension=1024), 2)
    assert (info.value.code, info.value.retryable) == ("Timeout", True)
    server.add_fault("drop")
    with pytest.raises(ProviderError) as info:
        send(provider(server), body(dimension=1024), 2)
    assert (info.value.code, info.value.retryable) == ("ConnectionError", True)


@pytest.mark.parametrize("kind, code, retryable", [
    ("malformed", "MalformedResponse", True),
    ("wrong-length", "WrongDimension", False),
    ("missing-index", "MissingIndex", False),
    ("nan", "NonFinite", False),
])
def test_answers_that_break_the_contract_are_failures_with_a_reason(server, kind, code, retryable):
    err = failure(server, kind)
    assert (err.code, err.retryable, err.fatal) == (code, retryable, False)
    assert err.message


@pytest.mark.parametrize("case, fatal", [("bad-url", False), ("unknown-model", True), ("403", True),
                                         ("404", True)])
def test_client_errors_are_not_retried_and_fatal_when_they_fail_everything(server, case, fatal):
    if case == "bad-url":
        server.add_fault("400")
        p, b = provider(server), body(dimension=1024)
    elif case == "unknown-model":
        p, b = provider(server, model="qwen9-embedding"), body(model="qwen9-embedding")
    elif case == "403":
        server.add_fault("403")
        p, b = provider(server), body(dimension=1024)
    else:
        p = provider(server)
        p.endpoint = server.base_url + "/services/embeddings/wrong-path"
        b = body(dimension=1024)
    with pytest.raises(ProviderError) as info:
        send(p, b, 2)
    err = info.value
    assert err.retryable is False and err.fatal is fatal and err.status in (400, 403, 404)
    if case == "unknown-model":
        assert "region" in err.message and err.code == "InvalidParameter"
    if case == "404":
        assert "/api/v1" in err.message
