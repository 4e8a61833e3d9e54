"""The response cache: content-addressed (any change to the body or endpoint is a new key), never
keyed or filled with the API key, whole entries only."""

from __future__ import annotations

import copy
import json

import pytest

from harness.execute.cache import ResponseCache, cache_key

ENDPOINT = "https://dashscope.aliyuncs.com/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding"
BODY = {"model": "qwen3-vl-embedding",
        "input": {"contents": [{"text": "A cat sitting on a red chair"}, {"image": "https://example.com/cat.png"}]},
        "parameters": {"dimension": 1024, "instruct": "Retrieve the image.", "enable_fusion": False}}


def _paths(obj, prefix=()):
    """Every leaf path of a JSON value."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))
    else:
        yield prefix


def _changed(body, path):
    out = copy.deepcopy(body)
    node = out
    for k in path[:-1]:
        node = node[k]
    old = node[path[-1]]
    node[path[-1]] = (not old) if isinstance(old, bool) else (old + 1 if isinstance(old, int) else old + "x")
    return out


def test_changing_any_body_field_or_the_endpoint_changes_the_key():
    base = cache_key(ENDPOINT, BODY)
    paths = list(_paths(BODY))
    assert len(paths) == 6
    keys = {cache_key(ENDPOINT, _changed(BODY, p)) for p in paths}
    assert base not in keys and len(keys) == len(paths)
    # adding or removing a field, and reordering contents, are changes too
    extra = copy.deepcopy(BODY)
    extra["parameters"]["fps"] = 0.5
    swapped = copy.deepcopy(BODY)
    swapped["input"]["contents"].reverse()
    fewer = copy.deepcopy(BODY)
    del fewer["parameters"]["instruct"]
    assert len({base, cache_key(ENDPOINT, extra), cache_key(ENDPOINT, swapped), cache_key(ENDPOINT, fewer)}) == 4
    assert cache_key(ENDPOINT.replace("dashscope.", "dashscope-intl."), BODY) != base
    assert cache_key(ENDPOINT + "/", BODY) != base


def test_key_ignores_dict_order_only():
    reordered = {"parameters": BODY["parameters"], "input": BODY["input"], "model": BODY["model"]}
    assert cache_key(ENDPOINT, reordered) == cache_key(ENDPOINT, BODY)


def test_put_get_refresh_and_disabled(tmp_path):
    key = cache_key(ENDPOINT, BODY)
    cache = ResponseCache(tmp_path)
    assert cache.get(key) is None
    cache.put(key, {"vectors": "AAAA", "request_id": "r1"})
    assert cache.get(key)["request_id"] == "r1"
    assert len(cache) == 1
    assert not list(tmp_path.rglob("*.tmp")), "no temp file is left behind"
    refresh = ResponseCache(tmp_path, refresh=True)
    assert refresh.get(key) is None                      # --refresh never reads ...
    refresh.put(key, {"vectors": "BBBB", "request_id": "r2"})
    assert cache.get(key)["request_id"] == "r2"          # ... but replaces what it fetched
    off = ResponseCache(tmp_path / "off", enabled=False)  # --no-cache neither reads nor writes
    off.put(key, {"vectors": "CCCC"})
    assert off.get(key) is None and not (tmp_path / "off").exists()


@pytest.mark.parametrize("damage", ["truncate", "other-key", "not-json"])
def test_a_damaged_entry_is_a_miss(tmp_path, damage):
    key = cache_key(ENDPOINT, BODY)
    cache = ResponseCache(tmp_path)
    cache.put(key, {"vectors": "AAAA"})
    path = cache.path(key)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:10])
    elif damage == "other-key":
        entry = json.loads(path.read_bytes())
        entry["key"] = "0" * 64
        path.write_text(json.dumps(entry))
    else:
        path.write_bytes(b"\x00\xff")
    assert cache.get(key) is None
