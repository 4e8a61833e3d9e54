"""Where each file of an output folder lives (docs/architecture.md, "The output folder").

Every module that names a file of the folder takes its name from here.
"""

from __future__ import annotations

import re

MANIFEST = "manifest.json"
RUN = "run.json"                    # times and host facts: not evidence, never hashed
VALIDATE = "validate.txt"
SPEC_COPY = "spec.yaml"
INPUTS = "inputs.jsonl"
EXECUTION = "execution.json"
EXPORT = "export.json"
SUMMARY = "summary.json"
JUNIT = "junit.xml"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
REPEAT_DIR = "repeat"               # `stability: {repeat: true}`: the second execution of a run
SIGNATURE = "manifest.sig"          # `run --sign`, `harness sign`: made after the manifest, over its digest
ATTESTATION = "attestation.intoto.json"   # an in-toto attestation over the manifest, made after it

# The reports show the manifest digest, so the digest cannot cover their bytes (see manifest.py);
# the manifest's file table still hashes them.
REPORTS = (SUMMARY, JUNIT, REPORT_MD, REPORT_HTML)
UNHASHED = frozenset({MANIFEST, RUN, SIGNATURE, ATTESTATION})
# Why each file beside the manifest is outside its hashes, as `verify` lists them.
UNHASHED_WHY = {RUN: "times and host facts", SIGNATURE: "a signature over the digest",
                ATTESTATION: "an attestation over the digest"}


# A cell's request bodies: from evidence format 3 one JSON Lines file, line N the canonical body of
# request N (canonical JSON never holds a raw newline); before it one file per request, named by the
# index's `file` (`payload_file`). The index beside them is the same in every format: line N is
# request N, its `file` (the request's name, NNNNN.json), the sha256 of its body, its inputs.
BODIES_FROM_FORMAT = 3


def payload_dir(cell_id: str) -> str:
    return f"payloads/{cell_id}"


def payload_index(cell_id: str) -> str:
    return f"payloads/{cell_id}/index.jsonl"


def payload_bodies(cell_id: str) -> str:
    """Every request body of the cell, one per line, in request order (evidence format 3 on)."""
    return f"payloads/{cell_id}/requests.jsonl"


def payload_file(cell_id: str, name: str) -> str:
    """One request's body in a folder of evidence format 1 or 2 (`name` as the index names it)."""
    return f"payloads/{cell_id}/{name}"


def request_name(seq: int) -> str:
    """Request `seq`'s name (1-based), the index's and the responses' `file`."""
    return f"{seq:05d}.json"


def vectors_file(cell_id: str) -> str:
    return f"vectors/{cell_id}.npy"


def ids_file(cell_id: str) -> str:
    return f"vectors/{cell_id}.ids.json"


def _file_name(check: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", check)


def check_results_file(cell_id: str, check: str) -> str:
    """A retrieval check's scores for one cell in a folder of evidence format 1 or 2 (MTEB's result
    fields, not its layout); from format 3 `mteb_result_file`."""
    return f"results/{cell_id}/{_file_name(check)}.json"


def _dir_name(name: str) -> str:
    safe = _file_name(name)
    return safe if safe.strip(".") else f"_{safe}"


def mteb_revision(dimension: int | None) -> str:
    """The revision a cell's results are filed under in MTEB's layout: its dimension (`dim-1024`), so
    the cells of one model are separate model results."""
    return f"dim-{dimension}"


def mteb_model_dir(model: str, dimension: int | None) -> str:
    """A cell's folder in MTEB's result layout, `results/<model name>/<revision>` (the name as MTEB
    writes it: `/` as `__`), which `mteb.ResultCache(cache_path=<run folder>)` reads."""
    return f"results/{_dir_name(model.replace('/', '__').replace(' ', '_'))}/{mteb_revision(dimension)}"


def mteb_result_file(model: str, dimension: int | None, task: str) -> str:
    """A retrieval check's scores for one cell, an MTEB TaskResult (`task`: the check's name)."""
    name = _file_name(task)
    return f"{mteb_model_dir(model, dimension)}/{name if name != 'model_meta' else name + '_'}.json"


def mteb_model_meta(model: str, dimension: int | None) -> str:
    """The cell's `model_meta.json` beside its results (MTEB's ModelMeta: name and revision)."""
    return f"{mteb_model_dir(model, dimension)}/model_meta.json"


def check_run_file(cell_id: str, check: str) -> str:
    """A retrieval check's ranking for one cell as a TREC run file (qid Q0 docid rank score tag)."""
    return f"runs/{cell_id}/{_file_name(check)}.trec"


def check_qrels_file(cell_id: str, check: str) -> str:
    """The judgements of a retrieval check's queries in the run file's ids (`qid 0 docid grade`), so
    trec_eval re-scores the run file as the check scored it (evidence format 3 on)."""
    return f"runs/{cell_id}/{_file_name(check)}.qrels"


def responses_file(cell_id: str) -> str:
    return f"responses/{cell_id}.jsonl"


# A cell's raw evidence: what its shard ran (`harness merge` takes these files from the shard that ran
# the cell); results/, runs/ and the reports are derived from them again, never taken.
_CELL_RAW = (re.compile(r"payloads/(?P<cell>[^/]+)/[^/]+"),
             re.compile(r"vectors/(?P<cell>[^/]+?)(?:\.ids\.json|\.npy)"),
             re.compile(r"responses/(?P<cell>[^/]+)\.jsonl"))


def cell_of(path: str) -> str | None:
    """The cell whose raw evidence the folder's file `path` is (its payload files, vectors and ids,
    responses; the same under repeat/), else None: a file of the whole run, or a derived one."""
    rel = path.removeprefix(f"{REPEAT_DIR}/")
    for pattern in _CELL_RAW:
        m = pattern.fullmatch(rel)
        if m:
            return m.group("cell")
    return None


def cell_files(files: dict[str, str] | list[str], cell_id: str) -> list[str]:
    """The files of `files` (a manifest's file table, or paths) that are `cell_id`'s raw evidence."""
    return sorted(p for p in files if cell_of(p) == cell_id)
