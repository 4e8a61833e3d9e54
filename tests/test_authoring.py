"""Spec authoring with standard tools: the shipped schemas in check-jsonschema and in the editor link
that `init` writes (offline, surviving a reinstall), and the machine-readable validate/models."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report.finalize import finalize
from tests.helpers import REPO, SPECS, harness, write_spec
from tests.test_report_html_summary import _run

SCHEMAS = REPO / "schemas"


def check_jsonschema(schema: Path, *instances: Path, cwd: Path) -> subprocess.CompletedProcess:
    """check-jsonschema as a user runs it, with no cache and every download sent to a dead proxy:
    a `$ref` that needs the network fails here."""
    env = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""}
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--no-cache", "--schemafile", str(schema),
                           *map(str, instances)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def schema_link(spec: Path) -> Path:
    """Where the `# yaml-language-server: $schema=` line of `spec` points (relative to the spec)."""
    m = re.match(r"# yaml-language-server: \$schema=(\S+)\n", spec.read_text(encoding="utf-8"))
    assert m, spec.read_text()[:200]
    return (spec.parent / m.group(1)).resolve()


@pytest.mark.slow    # check-jsonschema as its own process
def test_the_shipped_schemas_work_in_check_jsonschema_offline(tmp_path):
    specs = sorted(SPECS.glob("*.yaml"))
    r = check_jsonschema(SCHEMAS / "spec.schema.json", *specs, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    # the checks schema is really used (resolved beside the file), not skipped
    bad = write_spec(tmp_path, """
        version: 1
        name: bad-check
        inputs:
          - {id: a, text: hi}
        checks:
          - nearest: {query: a, expect: a, bogus: 1}
        """)
    r = check_jsonschema(SCHEMAS / "spec.schema.json", bad, cwd=tmp_path)
    assert r.returncode == 1 and "bogus" in r.stdout + r.stderr and "Traceback" not in r.stderr, r.stdout + r.stderr
    # summary.json written by the real report writer
    folder, manifest, results = _run(tmp_path)
    finalize(folder, manifest, results)
    r = check_jsonschema(SCHEMAS / "summary.schema.json", folder / "summary.json", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_init_links_the_editor_to_schemas_that_survive_a_reinstall(tmp_path):
    # Outside any project: init writes the schemas beside the spec and links there, not into the package.
    r = harness("init", "exp/my-spec.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    spec = tmp_path / "exp" / "my-spec.yaml"
    target = schema_link(spec)
    assert target == (tmp_path / "exp" / "schemas" / "spec.schema.json").resolve() and target.is_file()
    assert (target.parent / "checks.schema.json").is_file()
    r = check_jsonschema(target, spec, cwd=tmp_path)            # what the editor's language server resolves
    assert r.returncode == 0, r.stdout + r.stderr
    # A second spec beside it reuses them; a spec in a subfolder links up to them.
    assert harness("init", "exp/sub/other.yaml", cwd=tmp_path).returncode == 0
    assert schema_link(tmp_path / "exp" / "sub" / "other.yaml") == target
    assert not (tmp_path / "exp" / "sub" / "schemas").exists()

    # Inside a project with its own schemas/ (as this repository): link to those.
    project = tmp_path / "project"
    shutil.copytree(SCHEMAS, project / "schemas")
    assert harness("init", "specs/x.yaml", cwd=project).returncode == 0
    assert (project / "specs" / "x.yaml").read_text().startswith(
        "# yaml-language-server: $schema=../schemas/spec.schema.json\n")
    assert not (project / "specs" / "schemas").exists()
    assert check_jsonschema(project / "schemas" / "spec.schema.json", project / "specs" / "x.yaml",
                            cwd=project).returncode == 0

    # Another tool's schemas/ beside the spec is never overwritten.
    other = tmp_path / "other"
    (other / "schemas").mkdir(parents=True)
    (other / "schemas" / "spec.schema.json").write_text('{"title": "someone else"}')
    r = harness("init", "s.yaml", cwd=other)
    assert r.returncode == 2 and "schemas/spec.schema.json exists and is not the harness's schema" in r.stderr, r.stderr
    assert (other / "schemas" / "spec.schema.json").read_text() == '{"title": "someone else"}'
    assert not (other / "s.yaml").exists() and not (other / "schemas" / "checks.schema.json").exists()


def test_validate_json_reports_every_problem_and_the_verdict(tmp_path):
    shutil.copy(SPECS / "quickstart.yaml", tmp_path / "good.yaml")
    shutil.copytree(SPECS / "images", tmp_path / "images")
    write_spec(tmp_path, """
        version: 1
        name: bad
        inputs:
          - id: a
            txt: hi
        """, name="bad.yaml")
    r = harness("validate", "--json", "good.yaml", "bad.yaml", "missing.yaml", cwd=tmp_path)
    assert r.returncode == 3                                      # the same exit code as without --json
    doc = json.loads(r.stdout)
    assert doc["valid"] is False and doc["exit_code"] == 3
    good, bad, missing = doc["specs"]
    assert good["spec"] == "good.yaml" and good["valid"] is True and good["cells"] > 0
    assert bad["valid"] is False
    unknown = [p for p in bad["problems"] if "txt" in p["message"]]
    assert unknown == [{"file": "bad.yaml", "line": 5, "col": 5, "message": "unknown key 'txt' in inputs[0]",
                        "hint": "did you mean 'text'?", "severity": "error", "source": None}]
    assert missing["valid"] is False and missing["problems"][0]["file"] == "missing.yaml"
    r = harness("validate", "--json", "good.yaml", cwd=tmp_path)
    assert r.returncode == 0 and json.loads(r.stdout)["valid"] is True


def test_models_json_is_the_catalog_as_data(tmp_path):
    r = harness("models", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    models = {m["name"]: m for m in doc["models"]}
    m = models["qwen3-vl-embedding"]
    assert m["default_dimension"] in m["dimensions"] and isinstance(m["modalities"], list)
    assert m["provider"] == "dashscope" and "image" in m["modalities"]
    assert doc["version"] and "currency" not in doc        # no catalog-wide currency: each region has its own
    assert m["prices"]["cn-beijing"]["currency"] == "CNY" and m["prices"]["cn-beijing"]["sources"]
