"""Relevance judgements (qrels) from a file: TREC (`qid 0 docid grade`, whitespace separated)
or BEIR's TSV (`query-id<TAB>corpus-id<TAB>score` under a header line), told apart by the first
line. Grades are integers; a repeated (query, document) pair is an error, never a silent overwrite.
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import ExitCode, Failure

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
    """Read and parse a qrels file: (qrels, line of each pair, the bytes read). Raises QrelsError
    (the whole file: line None) or OSError."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise QrelsError(None, f"is not UTF-8 text (byte {e.start})", "save it as UTF-8") from None
    qrels, lines = parse_qrels(text)
    return qrels, lines, data


def relevant(grades: dict[str, int]) -> dict[str, int]:
    """The judged documents that count as relevant (grade > 0), as trec_eval counts them."""
    return {d: g for d, g in grades.items() if g > 0}
