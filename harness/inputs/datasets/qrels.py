"""Relevance judgements (qrels) from a file: TREC (`qid 0 docid grade`, whitespace separated)
or BEIR's TSV (`query-id<TAB>corpus-id<TAB>score` under a header line), told apart by the first
line. Grades are integers; a repeated (query, document) pair is an error, never a silent overwrite.

`Judgements` is what a retrieval check ranks against, in input ids, whichever way it was given;
`check_qrels_files` checks and records a check's own qrels file when the spec is planned.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from harness.errors import ExitCode, Failure
from harness.evidence import sha256_bytes
from harness.inputs.files import InputFiles
from harness.inputs.media import open_regular
from harness.inputs.types import InputProblem

BEIR_HEADER = ("query-id", "corpus-id", "score")


class QrelsError(Failure):
    """A problem at `line` of the qrels file (1-based; None for the file as a whole)."""

    exit_code = ExitCode.SPEC_INVALID


    def __init__(self, line: int | None, message: str, hint: str | None = None):
        super().__init__(message)
        self.line, self.message, self.hint = line, message, hint


Qrels = dict[str, dict[str, int]]    # query id → {document id → grade}


def parse_qrels(text: str) -> tuple[Qrels, dict[tuple[str, str], int]]:
    """The judgements and the line of each (query, document) pair. Raises QrelsError."""
    qrels: Qrels = {}
    lines: dict[tuple[str, str], int] = {}
    rows = text.splitlines()
    first = next((r for r in rows if r.strip()), "")
    beir = tuple(c.strip() for c in first.split("\t")) == BEIR_HEADER
    header_seen = False
    for n, raw in enumerate(rows, start=1):
        if not raw.strip():
            continue
        if beir and not header_seen:
            header_seen = True
            continue
        fields = raw.split("\t") if beir else raw.split()
        if beir and len(fields) != 3:
            raise QrelsError(n, f"has {len(fields)} tab-separated fields, BEIR qrels have 3 "
                             "(query-id, corpus-id, score)", "separate the fields with one tab each")
        if not beir and len(fields) != 4:
            raise QrelsError(n, f"has {len(fields)} fields, TREC qrels have 4 (query-id 0 doc-id grade)",
                             "or give BEIR's TSV with the header query-id<TAB>corpus-id<TAB>score")
        qid, doc, grade = (fields[0], fields[1], fields[2]) if beir else (fields[0], fields[2], fields[3])
        qid, doc = qid.strip(), doc.strip()
        try:
            value = int(grade)
        except ValueError:
            raise QrelsError(n, f"grade {grade.strip()!r} is not an integer", "grades are 0, 1, 2, ...") from None
        if not qid or not doc:
            raise QrelsError(n, "has an empty query or document id")
        if (qid, doc) in lines:
            raise QrelsError(n, f"judges query {qid!r} / document {doc!r} again (first at line {lines[qid, doc]})",
                             "keep one grade per pair")
        lines[qid, doc] = n
        qrels.setdefault(qid, {})[doc] = value
    if not qrels:
        raise QrelsError(None, "holds no judgements", "one line per judged (query, document) pair")
    return qrels, lines


def read_qrels(path: Path) -> tuple[Qrels, dict[tuple[str, str], int], bytes]:
    """Read and parse a qrels file (resolved by the caller through `InputFiles`; a regular file
    only): (qrels, line of each pair, the bytes read). Raises QrelsError (the whole file: line
    None) or OSError (NotRegularFile for a FIFO or a device)."""
    with open_regular(path) as f:
        data = f.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise QrelsError(None, f"is not UTF-8 text (byte {e.start})", "save it as UTF-8") from None
    qrels, lines = parse_qrels(text)
    return qrels, lines, data


def relevant(grades: dict[str, int]) -> dict[str, int]:
    """The judged documents that count as relevant (grade > 0), as trec_eval counts them."""
    return {d: g for d, g in grades.items() if g > 0}


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
    # the data set's files as (path as written relative to the spec, name inside the data set), whose
    # digest is the MTEB result's dataset_revision (`revision`); empty: the qrels file alone
    files: tuple[tuple[str, str], ...] = ()
    languages: tuple[str, ...] = ()                # ISO 639-3 + script (`eng-Latn`); empty: the default

    def revision(self, files: InputFiles) -> tuple[str, list[dict]]:
        """The data set's digest (an MTEB result's `dataset_revision`) and the files it covers: the
        sha256 of what `sha256sum` prints for them, run in the data set's folder with the names
        sorted (`<sha256>  <name>` lines: `cd data/scifact && sha256sum corpus.jsonl qrels/test.tsv
        queries.jsonl | sha256sum`). Raises JudgementsError when a file cannot be read."""
        named = self.files or (((self.source, Path(self.source).name),) if self.source else ())
        listing = []
        for written, name in sorted(set(named), key=lambda f: f[1].encode("utf-8")):
            try:
                listing.append({"name": name, "sha256": file_sha256(files.resolve(written, "data-set file", ()))})
            except InputProblem as p:
                raise JudgementsError(f"cannot read {written}: {p.message}") from None
            except OSError as e:
                raise JudgementsError(f"cannot read {written}: {e.strerror}") from None
        text = "".join(f"{f['sha256']}  {f['name']}\n" for f in listing)
        return sha256_bytes(text.encode("utf-8")), listing

    def twin(self, query: str) -> str | None:
        """The document input with the query's own qrels id (BEIR's and MTEB's `ignore_identical_ids`:
        in sets such as ArguAna or Quora a query is also in the corpus, and finding itself is no
        retrieval), or None."""
        if self.query_prefix and self.doc_prefix and query.startswith(self.query_prefix):
            return self.doc_prefix + query[len(self.query_prefix):]
        return None


_HASHED: dict[tuple, str] = {}     # a data set's files are hashed once per process, not per cell and check


def file_sha256(path: Path) -> str:
    """A regular file's sha256, read in blocks (a FIFO or a device is refused: OSError)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
    if key not in _HASHED:
        digest = hashlib.sha256()
        with open_regular(path) as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if len(_HASHED) > 4096:
            _HASHED.clear()
        _HASHED[key] = digest.hexdigest()
    return _HASHED[key]


class JudgementsError(Failure):
    """What a retrieval check ranks against cannot be read any more (a file gone since the run was planned)."""

    exit_code = ExitCode.SPEC_INVALID


def _same(input_id: str) -> str:
    return input_id


def file_judgements(path: str, files: InputFiles, qp: str, dp: str, esc: Callable[[str], str] = _same,
                    back: Callable[[str], str] = _same, task: str | None = None, split: str | None = None,
                    extra: dict | None = None) -> Judgements:
    """The judgements of the qrels file `path` (as written, relative to the spec's folder, read
    through the same confinement as when the run was planned), its ids made input ids as
    `qp`/`dp` + `esc(id)`. Raises JudgementsError when the file cannot be read (the spec was
    checked when the run was planned; this is a file gone or changed since)."""
    try:
        qrels, _, _ = read_qrels(files.resolve(path, "qrels file", ()))
    except InputProblem as p:
        raise JudgementsError(f"cannot read the qrels {path}: {p.message}") from None
    except (OSError, QrelsError) as e:
        why = e.strerror if isinstance(e, OSError) else (f"line {e.line}: " if e.line else "") + e.message
        raise JudgementsError(f"cannot read the qrels {path}: {why}") from None

    def to_qrels_id(input_id: str) -> str:
        for prefix in (qp, dp):
            if prefix and input_id.startswith(prefix):
                return back(input_id[len(prefix):])
        return back(input_id)

    mapped = {qp + esc(q): {dp + esc(d): g for d, g in docs.items()} for q, docs in qrels.items()}
    return Judgements(mapped, path, task, split, dp or None, to_qrels_id, extra or {}, qp or None)


MAX_QRELS_PROBLEMS = 20


def check_qrels_files(spec, ids: set[str], files) -> list:
    """Plan-time checks of every `retrieval: {qrels: FILE}` in the spec's checks: the file lies in
    the project and parses, and every id it names (with the check's prefixes) is an input of the
    spec; each problem names the qrels file and line. Each file read is recorded for the manifest
    (role `qrels`), so `verify` notices a file edited after the run."""
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
            problems.append(spec.problem(at, f"qrels file {written!r} does not exist",
                                         "paths are relative to the spec file"))
            continue
        except OSError as e:
            problems.append(spec.problem(at, f"cannot read the qrels file {written!r}: {e.strerror}"))
            continue
        except QrelsError as e:
            problems.append(spec.problem(at, f"{written}{f':{e.line}' if e.line else ''}: {e.message}", e.hint))
            continue
        files.record(written, sha256_bytes(data), len(data), "qrels", format="qrels")
        qp, dp = body.get("query_prefix", ""), body.get("doc_prefix", "")
        unknown = 0
        for (qid, doc), n in lines.items():
            for kind, given, input_id in (("query", qid, qp + qid), ("document", doc, dp + doc)):
                if input_id not in ids:
                    unknown += 1
                    if unknown <= MAX_QRELS_PROBLEMS:
                        problems.append(spec.problem(at, f"{written}:{n}: {kind} {given!r} is not an input of this "
                                                     f"spec (no input id {input_id!r})",
                                                     "judge only inputs the spec declares, "
                                                     "or set query_prefix/doc_prefix"))
                    break
    return problems
