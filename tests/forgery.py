"""Forge an executed output folder the way an auditor found it can be done: edit the vectors, let
the harness's own code re-evaluate the checks, rewrite validate.txt and the reports with its own
writers, and rehash the manifest, so hashes, re-derivation and the verdict check all agree."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from harness import manifest as manifest_mod
from harness.checks import evaluate_checks
from harness.evidence import atomic_write, canonical_json
from harness.report.markdown import write_markdown
from harness.report.summary import write_reports
from harness.verdict import CheckResult, render_validate_txt


def load(folder: Path, cell: str) -> tuple[np.ndarray, list[str]]:
    matrix = np.load(folder / "vectors" / f"{cell}.npy", allow_pickle=False)
    ids = json.loads((folder / "vectors" / f"{cell}.ids.json").read_text(encoding="utf-8"))
    return matrix, ids


def save(folder: Path, cell: str, matrix: np.ndarray, ids: list[str]) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(matrix, dtype=np.float32), allow_pickle=False)
    atomic_write(folder / "vectors" / f"{cell}.npy", buf.getvalue())
    atomic_write(folder / "vectors" / f"{cell}.ids.json", canonical_json(ids, pretty=True))


def results(folder: Path) -> list[CheckResult]:
    """The run's check results as summary.json recorded them."""
    checks = json.loads((folder / "summary.json").read_text(encoding="utf-8"))["checks"]
    return [CheckResult(c["name"], bool(c["passed"]), c.get("detail") or "", c.get("cell"), c.get("kind") or "offline",
                        c.get("data") or {}, status={"passed": "pass", "failed": "fail", "skipped": "skip",
                                                     "warning": "warn"}.get(c.get("status"), "")) for c in checks]


def recheck(folder: Path, spec_dir: Path) -> list[CheckResult]:
    """The run's results with the spec's checks re-evaluated over the (forged) vectors."""
    import yaml
    spec = yaml.safe_load((folder / "spec.yaml").read_text(encoding="utf-8"))
    cells = manifest_mod.read(folder)["cells"]
    return [r for r in results(folder) if r.kind != "check"] + \
        evaluate_checks(spec["checks"], folder, cells, spec_dir=spec_dir)


def finish(folder: Path, new_results: list[CheckResult]) -> None:
    """Rewrite validate.txt and the reports from `new_results`, then the manifest's hashes and digest."""
    body = {k: v for k, v in manifest_mod.read(folder).items() if k not in ("files", "digest")}
    atomic_write(folder / "validate.txt", render_validate_txt(new_results))
    write_markdown(folder, body, new_results)
    write_reports(folder, body, new_results)
    manifest_mod.finish(folder, body)


# --- the three forgeries of issue 11 -------------------------------------------------------------

def one_ulp(folder: Path, cell: str, spec_dir: Path, row: int = 0) -> str:
    """Move one float of one stored vector by one unit in the last place; returns the input id."""
    matrix, ids = load(folder, cell)
    matrix = matrix.copy()
    matrix[row, 0] = np.nextafter(matrix[row, 0], np.float32(np.inf), dtype=np.float32)
    save(folder, cell, matrix, ids)
    finish(folder, recheck(folder, spec_dir))
    return ids[row]


def swap_ids(folder: Path, cell: str, a: str, b: str, spec_dir: Path) -> None:
    """Swap two ids in vectors/<cell>.ids.json (each input gets the other's vector)."""
    matrix, ids = load(folder, cell)
    i, j = ids.index(a), ids.index(b)
    ids[i], ids[j] = ids[j], ids[i]
    save(folder, cell, matrix, ids)
    finish(folder, recheck(folder, spec_dir))


def copy_row(folder: Path, cell: str, source: str, target: str, spec_dir: Path) -> None:
    """Give `target` the vector of `source` (turns a failed nearest check into a pass)."""
    matrix, ids = load(folder, cell)
    matrix = matrix.copy()
    matrix[ids.index(target)] = matrix[ids.index(source)]
    save(folder, cell, matrix, ids)
    finish(folder, recheck(folder, spec_dir))


def drop_row(folder: Path, cell: str, target: str, spec_dir: Path) -> None:
    """Remove one input's vector (row and id), as if its request had never answered."""
    matrix, ids = load(folder, cell)
    keep = [n for n, i in enumerate(ids) if i != target]
    save(folder, cell, matrix[keep], [ids[n] for n in keep])
    finish(folder, recheck(folder, spec_dir))
