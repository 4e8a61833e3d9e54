"""Reading an input set's file: its rows, a chunk at a time, each with the label messages name it by.

A CSV or JSONL file (hashed as it is read, and recorded for the manifest) or an image folder or glob.
A CSV chunk keeps its rows as the reader gives them (lists of strings): a column is a list
comprehension, and a row's dict is made only for a template that is rendered. Bad rows go to the set's
`RowErrors`; reading stops after MAX_TEMPLATE_ERRORS of them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from pathlib import Path
from typing import Iterator

from harness.inputs.files import CSV_FIELD_LIMIT, InputFiles
from harness.inputs.media import open_regular
from harness.inputs.types import InputProblem

MAX_TEMPLATE_ERRORS = 20      # per input set: row errors reported before giving up on the set
# Rows come CHUNK at a time: a template renders a chunk in one loop, a chunk of texts is one TextRun.
CHUNK = 512


def _not_json(name: str):
    raise ValueError(f"{name} is not a JSON number")


class RowErrors:
    """The row problems of one input set, reported up to MAX_TEMPLATE_ERRORS."""

    def __init__(self, problems: list, where: tuple, source: str):
        self.problems, self.where, self.source, self.count = problems, where, source, 0

    def add(self, problem: "InputProblem") -> bool:
        """Report `problem`; True when that was one too many and the set should stop."""
        self.problems.append(problem)
        self.count += 1
        if self.count < MAX_TEMPLATE_ERRORS:
            return False
        self.problems.append(InputProblem(self.where, f"stopped after {MAX_TEMPLATE_ERRORS} errors in {self.source}"))
        return True


class _HashingReader(io.RawIOBase):
    """Hashes the bytes as the CSV/JSONL reader pulls them, so the record is of what was read."""

    def __init__(self, raw):
        self.raw, self.sha, self.size = raw, hashlib.sha256(), 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        n = self.raw.readinto(b)
        if n:
            self.sha.update(memoryview(b)[:n])
            self.size += n
        return n


def read_rows(entry: dict, files: InputFiles, where: tuple, errors: RowErrors) -> tuple[str, Iterator]:
    """(kind of row variable, iterator of chunks of rows). Bad rows go to `errors`."""
    source = entry["from"]
    fmt = entry.get("format")
    base_dir = files.base_dir
    path = base_dir / source
    has_glob = any(c in source for c in "*?[")
    if fmt is None:
        if has_glob or path.is_dir():
            fmt = "images"
        elif path.suffix.lower() in (".csv", ".tsv"):
            fmt = "csv"
        elif path.suffix.lower() in (".jsonl", ".ndjson"):
            fmt = "jsonl"
        else:
            raise InputProblem(where + ("from",), f"cannot tell the format of {source!r}",
                               "name a .csv or .jsonl file or a folder of images, or set `format:`", False)
    if fmt == "images":
        # the folder and the walk here; each file (a symlink may lead out) when its image is read
        found = files.listing(source, where + ("from",))
        if not found:
            raise InputProblem(where + ("from",), f"no files match {source!r}", "check the folder or glob", False)

        def image_rows():
            for f in found:
                rel = os.path.relpath(f, base_dir)
                if not rel.isascii():
                    try:
                        rel.encode("utf-8")
                    except UnicodeEncodeError:   # a name of bytes that are not UTF-8 (os.fsdecode's surrogates)
                        shown = os.fsencode(rel).decode("utf-8", "backslashreplace")
                        if errors.add(InputProblem(where + ("from",), f'{source} finds "{shown}", whose name is '
                                                   "not UTF-8: a run folder cannot record it",
                                                   "rename the file or folder, or narrow the glob", False)):
                            return
                        continue
                p = Path(rel)
                yield f"{rel}", {"file": {"path": p.as_posix(), "name": p.name, "stem": p.stem}}
        return "file", chunks(image_rows(), CHUNK)
    path = files.resolve(source, "input file", where + ("from",))
    if not path.exists() or path.is_dir():      # a FIFO or a device exists: opening it says what it is
        raise InputProblem(where + ("from",), f"input file {source!r} does not exist",
                           "paths are relative to the spec file", False)

    def csv_chunks(f):
        dialect = "excel-tab" if Path(source).suffix.lower() == ".tsv" else "excel"
        # strict: a quote never closed is an error, not a field that swallows every later row
        reader = csv.DictReader(f, dialect=dialect, strict=True)
        n, start = 0, 1
        try:
            header = reader.fieldnames or []
            twice = sorted({name for name in header if header.count(name) > 1})
            if twice:   # DictReader would keep the last column of each name and drop the others unseen
                raise InputProblem(where + ("from",),
                                   f"{source} header names the column{'s' if len(twice) > 1 else ''} "
                                   f"{', '.join(map(repr, twice))} more than once",
                                   "give every column its own name", False)
            start = reader.line_num + 1
            # rows as the reader gives them (lists), CHUNK at a time: no dict per row unless a template needs one
            lines, columns = reader.reader, len(header)
            numbers: list[int] = []
            rows: list[list[str]] = []
            for fields in lines:
                if not fields:      # a blank line
                    continue
                n += 1
                line = lines.line_num
                start = line + 1
                if len(fields) == columns:
                    numbers.append(n)
                    rows.append(fields)
                    if len(rows) == CHUNK:
                        yield CsvRows(source, header, numbers, rows)
                        numbers, rows = [], []
                    continue
                width = len(fields)     # more fields than the header, or fewer
                if errors.add(InputProblem(where + ("from",), f"{source} row {n} (line {line}) has "
                                           f"{width} field{'s' if width != 1 else ''}, "
                                           f"the header has {columns}",
                                           "give every row as many fields as the header; quote a field "
                                           "that holds a comma", False)):
                    break
            if rows:
                yield CsvRows(source, header, numbers, rows)
        except csv.Error as e:
            what = "a quoted field that is never closed" if "end of data" in str(e) else str(e)
            raise InputProblem(where + ("from",), f"{source} row {n + 1} (line {start}): {what}",
                               f"fields are limited to {CSV_FIELD_LIMIT:,} characters; check the quoting"
                               if "field limit" in str(e) else "check the quoting on that line", False) from None

    def jsonl_rows(f):
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line, parse_constant=_not_json)
            except json.JSONDecodeError as e:
                raise InputProblem(where + ("from",), f"{source} line {n} is not valid JSON: {e.msg}",
                                   "JSONL holds one JSON object per line", False) from None
            except (ValueError, RecursionError) as e:   # NaN, a 5,000-digit number, 200k nested brackets
                what = ("nesting too deep to read" if isinstance(e, RecursionError) else
                        str(e) if "not a JSON number" in str(e) else "a number too long to read")
                raise InputProblem(where + ("from",), f"{source} line {n} is not usable JSON: {what}",
                                   "JSONL holds one JSON object per line, of ordinary numbers and strings",
                                   False) from None
            if not isinstance(row, dict):
                raise InputProblem(where + ("from",), f"{source} line {n} is not a JSON object", None, False)
            yield f"{source} line {n}", {"row": row, "index": n}

    def file_chunks():
        try:
            with open_regular(path) as raw:
                hashed = _HashingReader(raw)
                with io.TextIOWrapper(io.BufferedReader(hashed, 1 << 16), encoding="utf-8-sig", newline="") as f:
                    yield from (csv_chunks(f) if fmt == "csv" else chunks(jsonl_rows(f), CHUNK))
                    f.read()      # hash to the end, whatever the reader left
                files.record(source, hashed.sha.hexdigest(), hashed.size, "input-set", format=fmt)
        except UnicodeDecodeError:
            raise InputProblem(where + ("from",), f"{source} is not UTF-8 text", "save it as UTF-8", False) from None
        except OSError as e:
            raise InputProblem(where + ("from",), f"cannot read {source}: {e.strerror}", None, False) from None
    return "row", file_chunks()


class Pairs(list):
    """A chunk of rows as (label, variables) pairs (JSONL rows, image files)."""

    @property
    def pairs(self) -> list:
        return self

    @property
    def labels(self) -> list[str]:
        return [label for label, _ in self]

    def column(self, var: str, name: str) -> list | None:
        """Every row's `name` field, or None when one is missing or not a string (Jinja then says what)."""
        values = [variables[var].get(name) for _, variables in self]
        return None if set(map(type, values)) - {str} else values


class CsvRows:
    """A chunk of CSV rows as the reader gave them (lists of strings): a column is a list comprehension,
    each row's dict for a template is made only when one is rendered."""

    def __init__(self, source: str, header: list[str], numbers: list[int], rows: list[list[str]]):
        self.source, self.header, self.numbers, self.rows = source, header, numbers, rows
        self._pairs = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def labels(self) -> list[str]:
        source = self.source
        return [f"{source} row {n}" for n in self.numbers]

    @property
    def pairs(self) -> list:
        if self._pairs is None:
            header = self.header
            self._pairs = [(label, {"row": dict(zip(header, fields)), "index": n})
                           for label, n, fields in zip(self.labels, self.numbers, self.rows)]
        return self._pairs

    def column(self, var: str, name: str) -> list[str] | None:
        if var != "row" or name not in self.header:
            return None
        i = self.header.index(name)
        return [fields[i] for fields in self.rows]


def chunks(rows, size):
    chunk = Pairs()
    for item in rows:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = Pairs()
    if chunk:
        yield chunk


