"""Evaluation data sets as inputs and checks: BEIR-format folders (`beir:` entries in `inputs:`)
and relevance judgements from qrels files (`retrieval: {qrels: ...}`).

`all_checks(spec data)` is the one list of checks a run evaluates: the spec's `checks:` and,
after them, one retrieval check per `beir:` entry; `judgements(body, spec_dir)` reads what a
retrieval check ranks against, whichever way it was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.inputs.datasets import beir as beir_mod
from harness.inputs.datasets import imagetext as imagetext_mod
from harness.inputs.datasets.qrels import QrelsError, Qrels, read_qrels
from harness.errors import ExitCode, Failure

# The cut-offs MTEB reports for retrieval; a check over qrels reports every metric at each.
MTEB_K = (1, 3, 5, 10, 20, 100, 1000)
QRELS_KINDS = ("recall", "ndcg", "precision", "map", "mrr")


def beir_check(entry: dict) -> dict:
    """The retrieval check a `beir:` entry brings (its `retrieval:` settings on top)."""
    settings = dict(entry.get("retrieval") or {})
    split = entry.get("split", beir_mod.DEFAULT_SPLIT)
    return {"retrieval": {"name": f"{beir_mod.task_name(entry)}-{split}", **settings,
                          "beir": {"folder": str(entry["beir"]).rstrip("/"), "split": split,
                                   "prefix": entry.get("prefix", ""), "task": beir_mod.task_name(entry),
                                   **({"sample": entry["sample"]} if entry.get("sample") else {})}}}


# Flickr30k/COCO-style evaluations report recall at 1, 5 and 10 in both directions.
IMAGETEXT_K = (1, 5, 10)
DIRECTIONS = ("t2i", "i2t")


def imagetext_checks(entry: dict) -> list[dict]:
    """The two retrieval checks an `imagetext:` entry brings: text→image and image→text."""
    settings = dict(entry.get("retrieval") or {})
    name = settings.pop("name", None) or imagetext_mod.set_name(entry)
    return [{"retrieval": {"k": list(IMAGETEXT_K), **settings, "name": f"{name}-{direction}",
                           "imagetext": {"file": str(entry["imagetext"]), "images": imagetext_mod.images_dir(entry),
                                         "prefix": entry.get("prefix", ""), "direction": direction,
                                         "task": imagetext_mod.set_name(entry)}}}
            for direction in DIRECTIONS]


def all_checks(data: dict) -> list[dict]:
    """The spec's checks, then those its data-set entries bring, in entry order."""
    checks = [c for c in (data.get("checks") or []) if isinstance(c, dict)] if isinstance(data, dict) else []
    inputs = data.get("inputs") if isinstance(data, dict) else None
    for entry in inputs if isinstance(inputs, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("beir"), str):
            checks.append(beir_check(entry))
        elif isinstance(entry, dict) and isinstance(entry.get("imagetext"), str):
            checks.extend(imagetext_checks(entry))
    return checks


@dataclass
class Judgements:
    """A retrieval check's relevance judgements in input ids, and the way back to the ids of
    the qrels (for the TREC run file). `source`: the qrels file as written, None for inline."""

    qrels: dict[str, dict[str, int]]               # query input id → {document input id → grade}
    source: str | None = None
    task: str | None = None
    split: str | None = None
    doc_prefix: str | None = None                  # candidates by default: the inputs with this prefix
    to_qrels_id: Callable[[str], str] = lambda i: i
    extra: dict = field(default_factory=dict)
    query_prefix: str | None = None

    def twin(self, query: str) -> str | None:
        """The document input with the query's own qrels id (BEIR's and MTEB's `ignore_identical_ids`:
        in sets such as ArguAna or Quora a query is also in the corpus, and finding itself is no
        retrieval), or None."""
        if self.query_prefix and self.doc_prefix and query.startswith(self.query_prefix):
            return self.doc_prefix + query[len(self.query_prefix):]
        return None


class JudgementsError(Failure):
    exit_code = ExitCode.SPEC_INVALID

    pass


def _mapped(qrels: Qrels, qp: str, dp: str, esc: Callable[[str], str]) -> dict[str, dict[str, int]]:
    return {qp + esc(q): {dp + esc(d): g for d, g in docs.items()} for q, docs in qrels.items()}


def judgements(body: dict, spec_dir: Path) -> Judgements:
    """What a retrieval check body ranks against. Raises JudgementsError when its qrels file
    cannot be read (the spec was checked when the run was planned; this is a file gone since)."""
    if body.get("beir"):
        b = body["beir"]
        entry = {"beir": b["folder"], "split": b["split"], "prefix": b.get("prefix", "")}
        path, qp, dp = beir_mod.qrels_path(entry), beir_mod.query_prefix(entry), beir_mod.doc_prefix(entry)
        esc, back = beir_mod.escape, beir_mod.unescape
        task, split = b.get("task"), b["split"]
        extra = {"sample": b["sample"]} if b.get("sample") else {}
    elif body.get("imagetext"):
        return _imagetext_judgements(body["imagetext"], spec_dir)
    elif body.get("qrels"):
        path, qp, dp = body["qrels"], body.get("query_prefix", ""), body.get("doc_prefix", "")
        esc, back = (lambda i: i), (lambda i: i)
        task, split, extra = None, None, {}
    else:
        return Judgements({q: {r: 1 for r in rel} for q, rel in (body.get("queries") or {}).items()})
    try:
        qrels, _, _ = read_qrels(spec_dir / path)
    except (OSError, QrelsError) as e:
        why = e.strerror if isinstance(e, OSError) else (f"line {e.line}: " if e.line else "") + e.message
        raise JudgementsError(f"cannot read the qrels {path}: {why}") from None

    def to_qrels_id(input_id: str) -> str:
        for prefix in (qp, dp):
            if prefix and input_id.startswith(prefix):
                return back(input_id[len(prefix):])
        return back(input_id)

    return Judgements(_mapped(qrels, qp, dp, esc), path, task, split, dp or None, to_qrels_id, extra, qp or None)


def _imagetext_judgements(it: dict, spec_dir: Path) -> Judgements:
    entry = {"imagetext": it["file"], "images": it["images"], "prefix": it.get("prefix", "")}
    try:
        items = imagetext_mod.read_items(entry, spec_dir)
    except OSError as e:
        raise JudgementsError(f"cannot read the captions {it['file']}: {e.strerror}") from None
    pairs = [(imagetext_mod.image_id(entry, i.image),
              [imagetext_mod.caption_id(entry, i.image, n) for n in range(1, len(i.captions) + 1)]) for i in items]
    if it["direction"] == "t2i":
        qrels = {c: {img: 1} for img, caps in pairs for c in caps}
        docs = imagetext_mod.image_prefix(entry)
    else:
        qrels = {img: {c: 1 for c in caps} for img, caps in pairs}
        docs = imagetext_mod.caption_prefix(entry)
    return Judgements(qrels, it["file"], it.get("task"), "test", docs)


MAX_QRELS_PROBLEMS = 20


def check_qrels_files(spec, ids: set[str], files) -> list:
    """Plan-time checks of every `retrieval: {qrels: FILE}` in the spec's checks: the file lies in
    the project and parses, and every id it names (with the check's prefixes) is an input of the
    spec; each problem names the qrels file and line. Each file read is recorded for the manifest
    (role `qrels`), so `verify` notices a file edited after the run."""
    from harness.inputs.resolve import InputProblem

    problems = []
    for index, check in enumerate(spec.data.get("checks") or []):
        body = check.get("retrieval") if isinstance(check, dict) else None
        if not isinstance(body, dict) or not isinstance(body.get("qrels"), str):
            continue
        at = ("checks", index, "retrieval", "qrels")
        written = body["qrels"]
        try:
            path = files.resolve(written, "qrels file", at)
            qrels, lines, data = read_qrels(path)
        except InputProblem as p:
            problems.append(spec.problem(at, p.message, p.hint))
            continue
        except FileNotFoundError:
            problems.append(spec.problem(at, f"qrels file {written!r} does not exist", "paths are relative to the spec file"))
            continue
        except OSError as e:
            problems.append(spec.problem(at, f"cannot read the qrels file {written!r}: {e.strerror}"))
            continue
        except QrelsError as e:
            problems.append(spec.problem(at, f"{written}{f':{e.line}' if e.line else ''}: {e.message}", e.hint))
            continue
        files.record(written, _sha256(data), len(data), "qrels", format="qrels")
        qp, dp = body.get("query_prefix", ""), body.get("doc_prefix", "")
        unknown = 0
        for (qid, doc), n in lines.items():
            for kind, given, input_id in (("query", qid, qp + qid), ("document", doc, dp + doc)):
                if input_id not in ids:
                    unknown += 1
                    if unknown <= MAX_QRELS_PROBLEMS:
                        problems.append(spec.problem(at, f"{written}:{n}: {kind} {given!r} is not an input of this "
                                                     f"spec (no input id {input_id!r})",
                                                     "judge only inputs the spec declares, or set query_prefix/doc_prefix"))
                    break
    return problems


def _sha256(data: bytes) -> str:
    from harness.evidence import sha256_bytes
    return sha256_bytes(data)
