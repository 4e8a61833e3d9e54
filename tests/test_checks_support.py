"""Output folders with chosen vectors, written through the folder writer (harness.folder).

Shared by the checks, report, verify and diff tests (imported as `tests.test_checks_support`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from harness import __version__
from harness.evidence import canonical_json, sha256_bytes
from harness.folder import MANIFEST_VERSION, CellExecution, CellVectors, Execution, Manifest, Reason, RunWriter
from harness.report.finalize import finalize

# Four inputs on a plane: captions sit near their photos.
VECTORS = {
    "cat-caption": [1.0, 0.1, 0.0],
    "cat-photo": [0.9, 0.2, 0.1],
    "dog-caption": [0.0, 1.0, 0.1],
    "dog-photo": [0.1, 0.9, 0.0],
}


def cell_entry(model: str, dimension: int, provider: str = "dashscope") -> dict:
    slug = model.replace("/", "--")
    return {"id": f"{slug}-{dimension}", "model": model, "wire_model": model, "provider": provider,
            "endpoint": "https://dashscope.example/api", "dimension": dimension, "dimension_sent": dimension,
            "parameters": {}, "required": False, "modalities": None,
            "modality_mix": {"text": 4}, "requests": 1, "contents": 4, "inputs": 4,
            "estimated_tokens": {"text": 40, "total": 40}, "estimated_cost": {"amount": 0.0001, "currency": "CNY"},
            "index": f"payloads/{slug}-{dimension}/index.jsonl"}


def unit(v) -> list[float]:
    a = np.asarray(v, dtype=np.float64)
    return (a / np.linalg.norm(a)).tolist()


def pad(v, dimension: int) -> list[float]:
    out = list(v) + [0.0] * (dimension - len(v))
    return unit(out[:dimension])


def make_run(folder: Path, cells: dict[str, dict[str, list[float]]] | None = None, *,
             models: dict[str, tuple[str, int]] | None = None, executed: bool = True, skip: tuple = (),
             latency: float = 120.0, name: str = "cat-retrieval") -> Manifest:
    """An executed run with chosen vectors; `cells` maps cell id -> {input id: vector}; cells in
    `skip` are planned but not executed (no API key). Vectors, responses and execution.json go
    through the folder writer, the manifest and reports through `finalize`, as in a real run;
    only the plan's files (spec, inputs.jsonl, payloads) are written here.

    Returns the manifest record (also written as manifest.json, with every file hashed).
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
    writer = RunWriter(folder)
    entries, execution = [], []
    for cid, vecs in cells.items():
        model, dim = models.get(cid) or (cid.rsplit("-", 1)[0], int(cid.rsplit("-", 1)[1]))
        entry = cell_entry(model, dim)
        entry.update(id=cid, index=f"payloads/{cid}/index.jsonl")
        entries.append(entry)
        body = canonical_json({"model": model, "input": {"contents": [{"text": i} for i in ids]},
                               "parameters": {"dimension": dim}})
        (folder / "payloads" / cid).mkdir(parents=True, exist_ok=True)
        (folder / "payloads" / cid / "requests.jsonl").write_bytes(body + b"\n")
        (folder / "payloads" / cid / "index.jsonl").write_bytes(canonical_json(
            {"file": "00001.json", "sha256": sha256_bytes(body), "inputs": ids, "contents": len(ids)}) + b"\n")
        if executed and cid not in skip:
            order = list(vecs)
            writer.vectors(cid, CellVectors(order, np.asarray([vecs[i] for i in order], dtype=np.float32)))
            usage = {"input_tokens": 30, "image_count": 2}
            writer.responses(cid, [{"file": "00001.json", "request_id": "req-1", "status": 200, "attempts": 1,
                                    "latency_ms": latency, "cache_hit": False, "usage": usage, "error": None}])
            execution.append(CellExecution(cid, model, "dashscope", requests={"total": 1, "ok": 1},
                                           vectors=len(order), expected_vectors=len(ids), dimension=dim,
                                           usage=usage))
        else:
            execution.append(CellExecution(cid, model, "dashscope", executed=False,
                                           reason=Reason("no DashScope API key", "set DASHSCOPE_API_KEY")))
    if executed:
        writer.execution(Execution(execution))
    manifest = Manifest(
        manifest_version=MANIFEST_VERSION, harness={"version": __version__},
        schema={"id": "test", "sha256": "0" * 64}, catalog={"version": "test", "sha256": "0" * 64},
        spec={"name": name, "path": "spec.yaml", "copy": "spec.yaml", "sha256": sha256_bytes(spec)},
        environment={"python": "3.11"},
        inputs={"count": len(ids), "sha256": sha256_bytes(inputs), "modality_counts": {"text": len(ids)},
                "files": [], "urls": []},
        cells=entries)
    return finalize(folder, manifest, [])


def test_make_run_writes_the_contract(tmp_path):
    m = make_run(tmp_path / "run")
    assert (tmp_path / "run" / "vectors" / "qwen3-vl-embedding-4.npy").is_file()
    assert np.load(tmp_path / "run" / "vectors" / "qwen3-vl-embedding-4.npy").shape == (4, 4)
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["cells"][0]["id"] == m.cells[0]["id"]
