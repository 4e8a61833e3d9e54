"""The spec's `checks:` evaluated over an output folder: one `CheckResult` per check per cell.

A check reads only what the folder holds (vectors/<cell>.npy rows in input order, their ids,
inputs.jsonl), through `harness.folder.RunReader`, so a run can be re-checked later without a network.
Each check counts trials (inputs, pairs or queries) and failures; its threshold is a pass rate or a
failure count, never a silent "nothing to assert": a check that matches no cell fails. Each kind lives
in its own module (vectors, pairs, retrieval, stability); this one selects cells and dispatches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from harness.checks.context import OUTPUTS, SKIP, VACUOUS, Ctx, Kind, json_number, listed
from harness.checks.pairs import check_nearest, check_similarity
from harness.checks.retrieval import check_retrieval
from harness.checks.stability import check_stability
from harness.checks.vectors import check_vectors
from harness.folder import EVIDENCE_FORMAT, CellExecution, FolderError, RunReader
from harness.folder.verdict import CheckResult, failure_cause, unexecuted
from harness.inputs.files import InputFiles
from harness.spec.checkrefs import Locate, _where, check_kind
from harness.words import counted

Write = Callable[[str, bytes], None]

EVALUATORS: dict[str, Kind] = {
    "vectors": check_vectors, "nearest": check_nearest, "similarity": check_similarity,
    "retrieval": check_retrieval, "stability": check_stability,
}


# --------------------------------------------------------------------------- naming and gating

def default_name(kind: str, body: dict) -> str:
    if body.get("name"):
        return str(body["name"])
    if kind == "nearest":
        return f"nearest:{body['query']}" if "query" in body else f"nearest:{len(body.get('pairs', {}))}-pairs"
    if kind == "similarity":
        return (f"similarity:{body['a']}~{body['b']}" if "a" in body
                else f"similarity:{len(body.get('pairs', []))}-pairs")
    return kind


def check_names(checks: list[dict]) -> list[str]:
    """A unique name per check, in spec order (a repeated name gets `#2`, `#3`...)."""
    seen: dict[str, int] = {}
    out = []
    for check in checks:
        kind = check_kind(check)
        name = default_name(kind, check[kind] or {})
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def gate(trials: int, failures: int, body: dict) -> tuple[bool, str]:
    """Apply the check's threshold; returns (passed, the rule in words)."""
    if trials == 0:
        return False, "no trials"
    if body.get("pass_rate") is not None:
        rate = (trials - failures) / trials
        need = float(body["pass_rate"])
        return rate >= need, f"pass rate {rate:.2f} {'≥' if rate >= need else '<'} {need:g}"
    allowed = int(body.get("max_failures") or 0)
    if allowed == 0:
        return failures == 0, f"{trials - failures}/{trials} passed"
    return failures <= allowed, f"{counted(failures, 'failure')} {'≤' if failures <= allowed else '>'} max {allowed}"


# --------------------------------------------------------------------------- public entry points

def selects(body: dict, cell: dict) -> bool:
    """Whether a check's `cells`/`models` filters include this cell (both must match)."""
    if body.get("cells") and cell.get("id") not in body["cells"]:
        return False
    if body.get("models") and cell.get("model") not in body["models"]:
        return False
    return True


def evaluate_checks(
    checks: list[dict],
    folder: Path,
    cells: list[dict],
    locate: Locate | None = None,
    *,
    spec_dir: Path | None = None,
    sliced: str | None = None,
    write: Write | None = None,
    allow_paths: tuple | list = (),
    skip_failed: bool = True,
    evidence_format: int = EVIDENCE_FORMAT,
) -> list[CheckResult]:
    """Evaluate every check in every cell it selects, in spec order then cell order.

    `cells` are the manifest's cell entries. A selected cell that was not executed (it has no
    vectors file, whatever execution.json says) gives a `skip` result with the reason (never a
    pass: reports count it as skipped); a check that would pass for any vectors (`VACUOUS`) a
    `warn` saying why, never counted as a pass; a check whose filters select no cell fails, so a
    typo never passes silently, unless the run was `sliced`
    (`run --model/--dimension/--cell`, described by this text): then it is a `skip`.
    `spec_dir` resolves a stability check's relative `against` path (default: the cwd); with
    `allow_paths` (the run's `--allow-path`) it is the confinement a check's own files (qrels,
    captions) are read through, as when the run was planned.
    `locate(path)` maps a path inside `checks:` (e.g. (0, "nearest")) to (line, col).
    `write(relative path, bytes)` receives the files a check gives the folder (a retrieval check
    over qrels: the cell's MTEB-layout result and TREC run file); `run` writes them through
    `RunWriter`, `verify` compares them with the folder's.
    A cell that was sent but failed to execute (no vector came back: a refused key, an unreachable
    host) gives `skip` lines naming the cause: its execution line is the FAIL they gate through.
    `skip_failed=False` gives the FAIL lines evidence formats 1 and 2 wrote instead (verify).
    `evidence_format`: the folder's (verify passes the manifest's), so a check gives the data and files
    that format wrote (a retrieval check's file layout, the queries it counts).
    """
    folder = Path(folder)
    spec_dir = Path(spec_dir) if spec_dir is not None else Path.cwd()
    files = InputFiles.for_spec(spec_dir, allow_paths)
    run = RunReader(folder)
    try:
        execution = run.execution()
    except FolderError:
        execution = None  # a reason for a missing cell is only a courtesy; the vectors decide
    try:
        input_ids = run.input_ids()
    except FolderError:
        input_ids = []
    prepared = []
    for index, (check, name) in enumerate(zip(checks, check_names(checks))):
        kind = check_kind(check)
        body = check[kind] or {}
        where = _where(locate, (index, kind))
        base = {"check": kind, "index": index, **({"line": where[0], "col": where[1]} if where else {})}
        prepared.append((index, name, kind, body, base))
    by_slot: dict[tuple[int, int], CheckResult] = {}
    # Cell by cell, so only one cell's vectors are in memory at a time.
    for position, cell in enumerate(cells):
        mine = [p for p in prepared if selects(p[3], cell)]
        if not mine:
            continue
        cid = cell["id"]
        info = execution.get(cid) if execution is not None else None
        try:
            vec = run.vectors(cid)    # the vectors decide whether the cell executed, never a flag
            planned = run.planned_ids(cid)
        except FolderError as exc:
            vec, planned = exc, None
        failed = _failed_cause(cell, vec, info, execution) if skip_failed else None    # the cell's, once
        for index, name, kind, body, base in mine:
            by_slot[(index, position)] = _evaluate_one(
                name, kind, body, {**base, "model": cell.get("model"), "dimension": cell.get("dimension")},
                cell, vec, info, folder, planned if planned is not None else input_ids, spec_dir, write, files,
                failed, evidence_format=evidence_format)
    results: list[CheckResult] = []
    for index, name, kind, body, base in prepared:
        mine = [by_slot[k] for k in sorted(k for k in by_slot if k[0] == index)]
        if not mine and sliced:
            mine = [CheckResult.skip(name, f"selects no cell of this run, which was limited to {sliced}", None,
                                     "check", {**base, "status": "skipped", "reason": "left out by the run's filter"})]
        if not mine:
            wanted = "; ".join(f"{k}: {', '.join(body[k])}" for k in ("cells", "models") if body.get(k))
            mine = [CheckResult(
                name, False, f"selects no cell of this run ({wanted}); cells are {listed([c['id'] for c in cells])}",
                None, "check", {**base, "status": "failed", "trials": 0, "failures": 0})]
        results.extend(mine)
    return results


def _lenient(body: dict, trials: int) -> str | None:
    """Why a check's pass rule lets every trial fail, if it does (`pass_rate: 0`, `max_failures` ≥ the trials)."""
    rate, allowed = body.get("pass_rate"), body.get("max_failures")
    if rate is not None and float(rate) <= 0:
        return f"pass_rate {rate:g} passes with every trial failed"
    if allowed is not None and trials and int(allowed) >= trials:
        return f"max_failures {allowed} allows all {trials} trials to fail"
    return None


def _failed_cause(cell: dict, vec, info: CellExecution | None, execution) -> str | None:
    """Why a cell that was sent has no vector at all ('HTTP 401 InvalidApiKey at 127.0.0.1:18733');
    None when it has vectors or nothing failed."""
    if vec is None or isinstance(vec, FolderError) or len(vec.ids):
        return None
    error = unexecuted(info, execution.fatal if execution is not None else None)
    return failure_cause(error, cell.get("endpoint")) if error is not None else None


def _evaluate_one(name: str, kind: str, body: dict, meta: dict, cell: dict, vec, info: CellExecution | None,
                  folder: Path, planned: list[str], spec_dir: Path, write: Write | None = None,
                  files: InputFiles | None = None, failed: str | None = None, *,
                  evidence_format: int = EVIDENCE_FORMAT) -> CheckResult:
    cid = cell["id"]
    if failed is not None:     # nothing to evaluate: the cell's execution line is the FAIL
        return CheckResult.skip(name, f"cell failed to execute: {failed}", cid, "check",
                                {**meta, "status": "skipped", "reason": f"cell failed to execute: {failed}"})
    if isinstance(vec, FolderError):
        return CheckResult(name, False, str(vec), cid, "check",
                           {**meta, "status": "failed", "trials": 0, "failures": 0})
    if vec is None:
        reason = info.reason if info is not None and info.reason and info.reason.text else None   # "" says nothing
        # The brief reason: its execution line (or the first such line) gives the hint in full.
        return CheckResult.skip(name, f"cell not executed: {reason.brief}" if reason else "cell not executed",
                                cid, "check", {**meta, "status": "skipped",
                                               "reason": reason.text if reason else "cell not executed"})
    trials, failures, detail, data = EVALUATORS[kind](body, Ctx(folder, cell, vec, planned, spec_dir, name, files,
                                                                evidence_format, info))
    outputs = data.pop(OUTPUTS, None)
    if outputs:   # {what: (relative path, bytes)}: checks.retrieval_files
        data["files"] = {what: path for what, (path, _) in sorted(outputs.items())}
        if write is not None:
            for what, (path, content) in sorted(outputs.items()):
                write(path, content)
    if data.get(SKIP):
        return CheckResult.skip(name, detail, cid, "check", {**meta, "status": "skipped", "reason": detail})
    passed, rule = gate(trials, failures, body) if kind != "retrieval" else (failures == 0 and trials > 0, "")
    text = detail if not rule or trials == 1 else f"{detail} ({rule})"
    vacuous = data.get(VACUOUS) or _lenient(body, trials)
    if passed and vacuous:   # it would pass for any vectors: a warning, never counted as a pass
        data[VACUOUS] = vacuous
        return CheckResult.warn(name, f"proves nothing: {vacuous} ({text})", cid, "check", {
            **meta, **data, "status": "warning", "trials": trials, "failures": failures,
            "pass_rate": json_number((trials - failures) / trials) if trials else 0.0})
    data.pop(VACUOUS, None)
    return CheckResult(name, passed, text, cid, "check", {
        **meta, **data, "status": "passed" if passed else "failed", "trials": trials, "failures": failures,
        "pass_rate": json_number((trials - failures) / trials) if trials else 0.0})
