"""Build output folders by hand, per the OUTPUT-FOLDER CONTRACT in docs/architecture.md.

Shared by the checks, report, verify and diff tests (imported as `tests.test_checks_support`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness.evidence import canonical_json, hash_tree, sha256_bytes

# Four inputs on a plane: captions sit near their photos.
VECTORS = {
    "cat-caption": [1.0, 0.1, 0.0],
    "cat-photo": [0.9, 0.2, 0.1],
    "dog-caption": [0.0, 1.0, 0.1],
    "dog-photo": [0.1, 0.9, 0.0],
}


def cell_entry(model: str, dimension: int, provider: str = "dashscope") -> dict:
    slug = model.replace("/", "--")
    return {"id": f"{slug}-{dimension}", "model": model, "provider": provider,
            "endpoint": "https://dashscope.example/api", "dimension": dimension, "dimension_sent": True,
            "parameters": {}, "modality_mix": {"text": 2, "image": 2}, "requests": 1, "contents": 4,
            "estimated_tokens": 40, "estimated_cost": {"amount": 0.0001, "currency": "CNY"}}


def unit(v) -> list[float]:
    a = np.asarray(v, dtype=np.float64)
    return (a / np.linalg.norm(a)).tolist()


def pad(v, dimension: int) -> list[float]:
    out = list(v) + [0.0] * (dimension - len(v))
    return unit(out[:dimension])


def make_run(folder: Path, cells: dict[str, dict[str, list[float]]] | None = None, *,
             models: dict[str, tuple[str, int]] | None = None, executed: bool = True, skip: tuple = (),
             latency: float = 120.0, name: str = "cat-retrieval") -> dict:
    """Write a complete executed run; `cells` maps cell id -> {input id: vector}; cells in
    `skip` are planned but not executed (no API key).

    Returns the manifest (also written as manifest.json, with every file hashed).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if cells is None:
        cells = {"qwen3-vl-embedding-4": {k: pad(v, 4) for k, v in VECTORS.items()}}
    models = models or {}
    ids = list(next(iter(cells.values())))
    spec = f"version: 1\nname: {name}\nmodels: [qwen3-vl-embedding]\ninputs: []\n".encode()
    (folder / "spec.yaml").write_bytes(spec)
    inputs = b"".join(canonical_json({"id": i, "modality": "text", "parts": [
        {"kind": "text", "sha256": sha256_bytes(i.encode()), "chars": len(i)}]}) + b"\n" for i in ids)
    (folder / "inputs.jsonl").write_bytes(inputs)
    entries, execution = [], {}
    for cid, vecs in cells.items():
        model, dim = models.get(cid) or (cid.rsplit("-", 1)[0], int(cid.rsplit("-", 1)[1]))
        entry = cell_entry(model, dim)
        entry["id"] = cid
        entries.append(entry)
        body = canonical_json({"model": model, "input": {"contents": [{"text": i} for i in ids]},
                               "parameters": {"dimension": dim}})
        (folder / "payloads" / cid).mkdir(parents=True, exist_ok=True)
        (folder / "payloads" / cid / "00000.json").write_bytes(body)
        (folder / "payloads" / cid / "index.jsonl").write_bytes(canonical_json(
            {"file": "00000.json", "sha256": sha256_bytes(body), "inputs": ids, "contents": len(ids)}) + b"\n")
        if executed and cid not in skip:
            (folder / "vectors").mkdir(exist_ok=True)
            order = list(vecs)
            np.save(folder / "vectors" / f"{cid}.npy", np.asarray([vecs[i] for i in order], dtype=np.float32))
            (folder / "vectors" / f"{cid}.ids.json").write_bytes(canonical_json(order))
            (folder / "responses").mkdir(exist_ok=True)
            (folder / "responses" / f"{cid}.jsonl").write_bytes(canonical_json({
                "file": "00000.json", "request_id": "req-1", "status": 200, "attempts": 1,
                "latency_ms": latency, "cache_hit": False, "usage": {"input_tokens": 30, "image_count": 2},
                "error": None}) + b"\n")
            execution[cid] = {"executed": True, "reason": None, "vectors": len(order), "dimension": dim,
                              "usage": {"input_tokens": 30, "image_count": 2}}
        else:
            execution[cid] = {"executed": False, "reason": "no DashScope API key: set DASHSCOPE_API_KEY"}
    (folder / "execution.json").write_bytes(canonical_json({"cells": execution}, pretty=True))
    manifest = {
        "manifest_version": 1, "harness": {"version": "0.1.0"},
        "spec": {"name": name, "path": "spec.yaml", "sha256": sha256_bytes(spec)},
        "inputs": {"count": len(ids), "sha256": sha256_bytes(inputs), "files": [], "urls": []},
        "cells": entries,
    }
    manifest["files"] = hash_tree(folder, exclude=frozenset({"manifest.json", "run.json"}))
    manifest["digest"] = sha256_bytes(canonical_json(manifest))
    (folder / "manifest.json").write_bytes(canonical_json(manifest, pretty=True))
    return manifest


def test_make_run_writes_the_contract(tmp_path):
    m = make_run(tmp_path / "run")
    assert (tmp_path / "run" / "vectors" / "qwen3-vl-embedding-4.npy").is_file()
    assert np.load(tmp_path / "run" / "vectors" / "qwen3-vl-embedding-4.npy").shape == (4, 4)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["cells"][0]["id"] == m["cells"][0]["id"]
