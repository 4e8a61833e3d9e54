"""canonical_json: orjson's bytes where it is used are exactly json.dumps's (sorted keys, compact,
UTF-8), on every example spec's request bodies and on fuzzed values; what orjson would write
otherwise (floats, big ints, subclasses, surrogates, NaN) takes json's path and raises as it did."""

from __future__ import annotations

import enum
import json
import random
from collections import OrderedDict

import pytest

from harness.evidence import _plain, canonical_json
from tests.helpers import REPO, cli_env, run_cli


def reference(obj) -> bytes:
    """The serialisation every digest was made with before orjson: the definition of the bytes."""
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


ODD = ["", "\x00", "\x1f", "\x7f", "\u2028\u2029", "é", "ß", "\U0001F600", "\ufeff", "\uffff", "\\", '"', "\n\r\t\b\f",
       "</script>", "z", "Z", "a\u0301", "\U0010FFFF", "中文", "\x80", "\u00a0"]


def fuzz(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth > 4 or r < 0.35:
        kind = rng.randrange(8)
        if kind == 0:
            return rng.choice([0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), 2**64, -(2**63) - 1,
                               10**30, rng.randrange(-10**6, 10**6)])
        if kind == 1:
            return rng.choice([0.0, -0.0, 1e-05, 1e-7, 0.1, 1.5, 1e16, 1e15, 1e22, 5e-324, 123456789.123,
                               1.7976931348623157e308, rng.random(), rng.uniform(-1e9, 1e9)])
        if kind == 2:
            return rng.choice([True, False, None])
        return "".join(rng.choice(ODD + [chr(rng.randrange(32, 0x3000))]) for _ in range(rng.randrange(6)))
    if r < 0.7:
        return {rng.choice(ODD) + str(rng.randrange(50)): fuzz(rng, depth + 1) for _ in range(rng.randrange(5))}
    return [fuzz(rng, depth + 1) for _ in range(rng.randrange(5))] if r < 0.9 else \
        tuple(fuzz(rng, depth + 1) for _ in range(rng.randrange(3)))


def test_fuzzed_values_serialise_as_json_does():
    rng = random.Random(25)
    fast = 0
    for _ in range(4000):
        obj = fuzz(rng)
        assert canonical_json(obj) == reference(obj), obj
        fast += _plain(obj)
    assert fast > 1000       # the orjson path was taken for a good share, not skipped


def test_keys_sort_by_code_point_on_both_paths():
    keys = {k: 1 for k in ("z", "é", "\U0001F600", "\uffff", "A", "a", "\u00a0", "")}
    assert canonical_json(keys) == reference(keys)
    assert canonical_json({**keys, "f": 0.5}) == reference({**keys, "f": 0.5})


@pytest.mark.parametrize("obj", [{"a": "\ud800"}, ["x\udcff"], {"\udc80": 1}])
def test_lone_surrogate_fails_as_before(obj):
    with pytest.raises(UnicodeEncodeError):
        canonical_json(obj)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_nan_and_infinity_are_refused(value):
    with pytest.raises(ValueError):
        canonical_json({"v": [value]})


class Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize("obj", [{"c": Colour.RED}, OrderedDict(b=1, a=2), {1: "int key"}, {"deep": [[[[[[[]]]]]]]},
                                 [2**64, -(2**63) - 1]])
def test_what_orjson_writes_otherwise_takes_jsons_path(obj):
    assert canonical_json(obj) == reference(obj)


def test_deep_nesting_past_orjsons_limit():
    obj: list = []
    for _ in range(300):
        obj = [obj]
    assert canonical_json(obj) == reference(obj)


def test_every_example_specs_request_bodies_are_jsons_bytes(tmp_path):
    """Each request body of each example spec, as a run writes it, re-serialised by the reference."""
    from harness.folder.reader import open_run

    specs = sorted((REPO / "specs").glob("*.yaml"))
    assert len(specs) >= 5
    bodies = 0
    for spec in specs:
        out = tmp_path / spec.stem
        result = run_cli("run", str(spec), "--output", str(out), "--quiet", cwd=REPO,
                         env=cli_env(tmp_path / "home", tmp_path / "cache"))
        assert result.returncode in (0, 1), result.stderr
        (folder,) = [p for p in out.iterdir() if p.is_dir()]
        run = open_run(folder)
        for cell in run.cells:
            for _, data in run.read.payload_bodies(cell.id, run.manifest.format):
                assert reference(json.loads(data)) == bytes(data)
                bodies += 1
        for line in (folder / "inputs.jsonl").read_bytes().splitlines():
            assert reference(json.loads(line)) == line
    assert bodies >= 39
