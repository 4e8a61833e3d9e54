"""A BEIR-format folder as inputs: `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl`
(`_id`, `text`) and `qrels/<split>.tsv` (`query-id  corpus-id  score`, with a header).

One `beir:` entry in `inputs:` gives the split's queries (every query the qrels judge, whatever the
grades, as BEIR's loader and MTEB keep them: a query judged only grade 0 scores 0) as inputs
`<prefix>q:<id>` and the corpus as `<prefix>d:<id>`, so query and document ids never collide; a
document's text is its title and text joined by one space and stripped, as BEIR's models embed it.
`sample:` keeps a seeded sample of the queries, every document judged for them and a seeded sample
of the others, for a quick run on a big set. The entry also brings a retrieval check over them
(`checks`), ranked against the split's qrels (`judgements`); its `languages:` (default `eng-Latn`)
are the MTEB result's.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from harness.evidence import sha256_bytes
from harness.folder import EVIDENCE_FORMAT
from harness.inputs.datasets.qrels import Judgements, Qrels, QrelsError, file_judgements, read_qrels, relevant
from harness.inputs.files import InputFiles
from harness.inputs.types import ID_RE, Input, InputProblem, Part, unicode_problem

MODALITIES = ("text",)
CORPUS, QUERIES = "corpus.jsonl", "queries.jsonl"
DEFAULT_SPLIT = "test"
MAX_ERRORS = 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._:-]")     # what an input id cannot hold, and `@`, the escape
DEFAULT_LANGUAGES = ("eng-Latn",)   # an entry's `languages:` when not given (BEIR's sets are English)
# `verify` plans a folder of an earlier evidence format with this key on its data-set entries (its value
# the format): formats 1 and 2 left out the queries judged only grade 0 (`ZERO_GRADES_FROM`)
FORMAT_KEY = "_evidence_format"
ZERO_GRADES_FROM = 3


def escape(dataset_id: str) -> str:
    """A dataset id inside an input id: each character an input id cannot hold (and `@`) as
    `@HH` per UTF-8 byte, so DBpedia's `<dbpedia:X>` or a title with spaces still has one id."""
    return _UNSAFE.sub(lambda m: "".join(f"@{b:02X}" for b in m.group().encode("utf-8")), dataset_id)


def unescape(text: str) -> str:
    """The dataset id behind `escape(id)`."""
    if "@" not in text:
        return text
    return re.sub(r"(?:@[0-9A-F]{2})+", lambda m: bytes.fromhex(m.group().replace("@", "")).decode("utf-8"), text)


def query_prefix(entry: dict) -> str:
    return f"{entry.get('prefix', '')}q:"


def doc_prefix(entry: dict) -> str:
    return f"{entry.get('prefix', '')}d:"


def task_name(entry: dict) -> str:
    """The dataset's name in reports and the MTEB result (`name:`, else the folder's name)."""
    return str(entry.get("name") or Path(str(entry["beir"]).rstrip("/")).name or "beir")


def qrels_path(entry: dict) -> str:
    """The split's qrels file as written relative to the spec (POSIX)."""
    return f"{str(entry['beir']).rstrip('/')}/qrels/{entry.get('split', DEFAULT_SPLIT)}.tsv"


def jsonl_rows(text: str, shown: str) -> Iterator[tuple[int, object, str | None]]:
    """(line number, value, None) per non-blank line of a JSONL text, or (line, None, message)
    for a line that is not JSON: the data-set readers word the rest themselves."""
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line), None
        except (ValueError, RecursionError) as e:
            yield n, None, f"{shown}:{n}: not valid JSON ({getattr(e, 'msg', 'nesting too deep')})"


@dataclass
class _Record:
    id: str
    text: str
    line: int


class _Problems:
    def __init__(self, problems: list, where: tuple):
        self.problems, self.where, self.count = problems, where, 0

    def add(self, message: str, hint: str | None = None) -> None:
        self.count += 1
        if self.count <= MAX_ERRORS:
            self.problems.append(InputProblem(self.where, message, hint, False))
        elif self.count == MAX_ERRORS + 1:
            self.problems.append(InputProblem(self.where, f"stopped after {MAX_ERRORS} errors in this BEIR folder",
                                              None, False))


def _read_jsonl(shown: str, fields: tuple[str, ...], errors: _Problems, files: InputFiles,
                written: str) -> list[_Record]:
    """Every record of a BEIR JSONL file (read through the confinement: a link out of the project,
    a FIFO or a device is refused), its text joined from `fields`; duplicates and bad lines go to
    `errors` with file:line."""
    try:
        data = files.read_bytes(written, "BEIR file", errors.where)
    except InputProblem as p:
        errors.add(p.message, p.hint)
        return []
    except FileNotFoundError:
        errors.add(f"{shown} does not exist", "a BEIR folder holds corpus.jsonl, queries.jsonl and qrels/<split>.tsv")
        return []
    except OSError as e:
        errors.add(f"cannot read {shown}: {e.strerror}")
        return []
    files.record(written, sha256_bytes(data), len(data), "dataset", format="jsonl")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        errors.add(f"{shown} is not UTF-8 text (byte {e.start})", "save it as UTF-8")
        return []
    out: list[_Record] = []
    first: dict[str, int] = {}
    for n, row, problem in jsonl_rows(text, shown):
        if problem:
            errors.add(problem, "a JSONL file holds one JSON object per line")
            continue
        if not isinstance(row, dict):
            errors.add(f"{shown}:{n}: not a JSON object", "each line is {\"_id\": ..., \"text\": ...}")
            continue
        rid = row.get("_id")
        if isinstance(rid, int) and not isinstance(rid, bool):
            rid = str(rid)
        if not isinstance(rid, str) or not rid.strip():
            errors.add(f"{shown}:{n}: no `_id` string", "each line is {\"_id\": ..., \"text\": ...}")
            continue
        parts = [row.get(f) if row.get(f) is not None else "" for f in fields]
        if any(not isinstance(p, str) for p in parts):
            errors.add(f"{shown}:{n}: {' and '.join(f'`{f}`' for f in fields)} must be strings")
            continue
        body = " ".join(parts).strip()        # BEIR: (title + " " + text).strip()
        if not body:
            errors.add(f"{shown}:{n}: {rid!r} has no text", "drop the line or fill `text`")
            continue
        bad = unicode_problem(body)
        if bad:
            errors.add(f"{shown}:{n}: {bad}")
            continue
        if rid in first:
            errors.add(f"{shown}:{n}: duplicate _id {rid!r} (first at line {first[rid]})", "give each line its own _id")
            continue
        first[rid] = n
        out.append(_Record(rid, body, n))
    return out


@dataclass
class BeirSet:
    """What a `beir:` entry resolves to (before sampling is applied to inputs)."""

    queries: list[_Record]
    corpus: list[_Record]
    qrels: Qrels


def load(entry: dict, index: int, files: InputFiles, problems: list) -> BeirSet | None:
    """Read and cross-check the folder; None (with problems added) when it cannot be used."""
    where = ("inputs", index, "beir")
    written = str(entry["beir"]).rstrip("/")
    folder = files.resolve(written, "BEIR folder", where)
    errors = _Problems(problems, where)
    if not folder.is_dir():
        raise InputProblem(where, f"BEIR folder {written!r} does not exist",
                           "paths are relative to the spec file; the folder holds corpus.jsonl, queries.jsonl "
                           "and qrels/<split>.tsv", False)
    qrels_written = qrels_path(entry)
    qrels_file = files.resolve(qrels_written, "qrels file", where)
    corpus_at, queries_at = f"{written}/{CORPUS}", f"{written}/{QUERIES}"
    corpus = _read_jsonl(corpus_at, ("title", "text"), errors, files, corpus_at)
    queries = _read_jsonl(queries_at, ("text",), errors, files, queries_at)
    try:
        qrels, lines, data = read_qrels(qrels_file)
        files.record(qrels_written, sha256_bytes(data), len(data), "qrels", format="tsv")
    except FileNotFoundError:
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        errors.add(f"{qrels_written} does not exist", f"splits here: {', '.join(splits)}" if splits else
                   "a BEIR folder holds qrels/<split>.tsv")
        return None
    except OSError as e:
        errors.add(f"cannot read {qrels_written}: {e.strerror}")
        return None
    except QrelsError as e:
        errors.add(f"{qrels_written}{f':{e.line}' if e.line else ''}: {e.message}", e.hint)
        return None
    if errors.count:
        return None
    query_ids = {r.id for r in queries}
    doc_ids = {r.id for r in corpus}
    for (qid, doc), n in lines.items():
        if qid not in query_ids:
            errors.add(f"{qrels_written}:{n}: query-id {qid!r} is not in {written}/{QUERIES}",
                       f"judge only the queries of {QUERIES}")
        elif doc not in doc_ids:
            errors.add(f"{qrels_written}:{n}: corpus-id {doc!r} is not in {written}/{CORPUS}",
                       f"judge only the documents of {CORPUS}")
    for records, prefix, name in ((queries, query_prefix(entry), QUERIES), (corpus, doc_prefix(entry), CORPUS)):
        for r in records:
            if not ID_RE.match(prefix + escape(r.id)):
                errors.add(f"{written}/{name}:{r.line}: _id {r.id[:60]!r} makes an input id longer than 128 "
                           "characters", "shorten the ids or the `prefix:`")
    if errors.count:
        return None
    return BeirSet(queries, corpus, qrels)


def select(beir: BeirSet, entry: dict) -> tuple[list[_Record], list[_Record]]:
    """The queries to embed (every query the qrels judge, BEIR's and MTEB's rule; judged relevant to
    something in a folder of evidence format 1 or 2) and the documents, after the seeded `sample:`
    when given; both in file order."""
    every = entry.get(FORMAT_KEY, EVIDENCE_FORMAT) >= ZERO_GRADES_FROM
    judged = [q for q in beir.queries if q.id in beir.qrels and (every or relevant(beir.qrels[q.id]))]
    sample = entry.get("sample") or {}
    if not sample:
        return judged, beir.corpus
    rng = random.Random(int(sample.get("seed", 0)))
    if sample.get("queries") is not None and sample["queries"] < len(judged):
        keep = set(id(q) for q in rng.sample(judged, int(sample["queries"])))
        judged = [q for q in judged if id(q) in keep]
    needed = {d for q in judged for d in beir.qrels.get(q.id, {})}
    corpus = beir.corpus
    if sample.get("corpus") is not None:
        others = [d for d in corpus if d.id not in needed]
        extra = max(0, int(sample["corpus"]) - len(needed))
        chosen = needed | {d.id for d in (rng.sample(others, extra) if extra < len(others) else others)}
        corpus = [d for d in corpus if d.id in chosen]
    return judged, corpus


def inputs(entry: dict, index: int, files: InputFiles, problems: list) -> Iterator[Input]:
    """The inputs of one `beir:` entry: its queries, then its documents."""
    where = ("inputs", index)
    beir = load(entry, index, files, problems)
    if beir is None:
        return
    queries, corpus = select(beir, entry)
    written = str(entry["beir"]).rstrip("/")
    for records, prefix, name in ((queries, query_prefix(entry), QUERIES), (corpus, doc_prefix(entry), CORPUS)):
        for r in records:
            yield Input(prefix + escape(r.id), "text", (Part("text", r.text),), where,
                        f"{written}/{name} line {r.line}")


def checks(entry: dict) -> list[dict]:
    """The retrieval check a `beir:` entry brings (its `retrieval:` settings on top)."""
    settings = dict(entry.get("retrieval") or {})
    split = entry.get("split", DEFAULT_SPLIT)
    return [{"retrieval": {"name": f"{task_name(entry)}-{split}", **settings,
                           "beir": {"folder": str(entry["beir"]).rstrip("/"), "split": split,
                                    "prefix": entry.get("prefix", ""), "task": task_name(entry),
                                    **({"languages": entry["languages"]} if entry.get("languages") else {}),
                                    **({"sample": entry["sample"]} if entry.get("sample") else {})}}}]


def judgements(check: dict, files: InputFiles) -> Judgements:
    """What the check a `beir:` entry brought ranks against (`check`: its `beir:` part): the split's qrels."""
    entry = {"beir": check["folder"], "split": check["split"], "prefix": check.get("prefix", "")}
    extra = {"sample": check["sample"]} if check.get("sample") else {}
    judged = file_judgements(qrels_path(entry), files, query_prefix(entry), doc_prefix(entry), escape, unescape,
                             check.get("task"), check["split"], extra)
    folder = str(check["folder"]).rstrip("/")
    name = f"qrels/{check['split']}.tsv"
    judged.files = ((f"{folder}/{CORPUS}", CORPUS), (f"{folder}/{QUERIES}", QUERIES), (f"{folder}/{name}", name))
    judged.languages = tuple(check.get("languages") or DEFAULT_LANGUAGES)
    return judged
