"""Forge an executed output folder the way an auditor found it can be done: edit the vectors, let
the harness's own code re-evaluate the checks, rewrite validate.txt and the reports with its own
writers, and rehash the manifest, so hashes, re-derivation and the verdict check all agree."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.checks.evaluate import evaluate_checks
from harness.folder import CellVectors, RunReader, RunWriter
from harness.folder.verdict import CheckResult
from harness.report.finalize import finalize


def record_execution(folder: Path, vectors: dict[str, CellVectors]) -> list[CheckResult]:
    """What the engine records when every request of the cells in `vectors` answered with those
    vectors (responses, vectors, execution.json; the manifest's other cells not executed, for want
    of a key); returns the run's execution lines, as the engine derives them."""
    from harness.execute.results import CellOutcome, cell_lines, row_norms
    from harness.folder import Execution

    reader, writer = RunReader(folder), RunWriter(folder)
    outcomes = []
    for cell in reader.manifest().entries():
        got = vectors.get(cell.id)
        if got is None:
            outcomes.append(CellOutcome(cell.id, cell.model, cell.provider, required=bool(cell.required),
                                        executed=False, reason="no API key: set DASHSCOPE_API_KEY"))
            continue
        index = reader.payload_index(cell.id)
        writer.responses(cell.id, [{"file": e["file"], "request_id": None, "status": 200, "attempts": 1,
                                    "latency_ms": 1.0, "cache_hit": False, "usage": None, "error": None}
                                   for e in index])
        writer.vectors(cell.id, got)
        norms = row_norms(got.matrix, np.ones(len(got.ids), dtype=bool))
        outcomes.append(CellOutcome(cell.id, cell.model, cell.provider, required=bool(cell.required), executed=True,
                                    requests=len(index), ok=len(index),
                                    expected_vectors=sum(len(e["inputs"]) for e in index), vectors=len(got.ids),
                                    dimension=got.dimension,
                                    norms={"min": round(float(norms.min()), 6), "mean": round(float(norms.mean()), 6),
                                           "max": round(float(norms.max()), 6)}))
    writer.execution(Execution([o.to_record() for o in outcomes]))
    said: dict[str, str] = {}
    return [line for o in outcomes for line in cell_lines(o, said=said)]


def load(folder: Path, cell: str) -> tuple[np.ndarray, list[str]]:
    v = RunReader(folder).vectors(cell)
    return v.matrix.copy(), list(v.ids)


def save(folder: Path, cell: str, matrix: np.ndarray, ids: list[str]) -> None:
    RunWriter(folder).vectors(cell, CellVectors(ids, matrix))


def results(folder: Path) -> list[CheckResult]:
    """The run's check results as summary.json recorded them."""
    return RunReader(folder).results()


def recheck(folder: Path, spec_dir: Path) -> list[CheckResult]:
    """The run's results with the spec's checks re-evaluated over the (forged) vectors."""
    import yaml
    spec = yaml.safe_load((folder / "spec.yaml").read_text(encoding="utf-8"))
    cells = RunReader(folder).manifest().cells
    return [r for r in results(folder) if r.kind != "check"] + \
        evaluate_checks(spec["checks"], folder, cells, spec_dir=spec_dir)


def finish(folder: Path, new_results: list[CheckResult]) -> None:
    """Rewrite validate.txt, the reports and the manifest (hashes, digest) from `new_results`,
    through the one end of every run."""
    finalize(folder, RunReader(folder).manifest(), new_results)


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
