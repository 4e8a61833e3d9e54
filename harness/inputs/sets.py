"""Input sets: one input per row of a CSV or JSONL file, or per file of an image folder or glob.

Texts and ids of input sets are Jinja2 templates rendered in a sandbox with strict undefined
variables, so a typo in `{{ row.captoin }}` is an error naming the row, not an empty string.
The file is hashed as it is read and recorded for the manifest.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from harness.inputs.files import CSV_FIELD_LIMIT, InputFiles, media_part
from harness.inputs.media import open_regular
from harness.inputs.types import ID_RE, Input, InputProblem, Part, unicode_problem

if TYPE_CHECKING:       # annotations only: jinja2 is imported where input sets are read
    import jinja2

MAX_TEMPLATE_ERRORS = 20      # per input set: row errors reported before giving up on the set
# A template may repeat a row's fields (`{{ row.a }}: {{ row.a }}`), not multiply them: what it prints
# for a row is bounded by its own length, this many times the row's characters, and a little slack.
# Without it `{{ row.t * 1000000 }}` over a long CSV is an alias bomb by another path (GBs of payloads).
TEMPLATE_GROWTH, TEMPLATE_SLACK = 8, 4096


def _template_budget(template: str, variables: dict) -> int:
    fields = variables.get("row", variables.get("file", {}))
    return len(template) + TEMPLATE_GROWTH * sum(len(str(v)) for v in fields.values()) + TEMPLATE_SLACK


class NotText(Exception):
    """A template printed a value that has no text form (null, a list, an object)."""


def _not_json(name: str):
    raise ValueError(f"{name} is not a JSON number")


class Amplified(Exception):
    """A template printed far more than its row holds."""


_NOT_TEXT = {type(None): "null", list: "a list", dict: "an object"}


def _finalize(value):
    # Jinja would print None as "None" and lists/objects as their Python repr: never what was meant
    what = _NOT_TEXT.get(type(value))
    if what is not None:
        shown = "" if value is None else " " + json.dumps(value, ensure_ascii=False, default=str)[:60]
        raise NotText(f"the template prints {what}{shown}, not text")
    return value


@functools.lru_cache(maxsize=1)
def _env():
    """The template sandbox, made (and Jinja2 imported) only when a spec has an input set."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False,
                                finalize=_finalize)


def _compile(entry: dict, key: str, where: tuple) -> jinja2.Template | None:
    import jinja2

    if key not in entry:
        return None
    try:
        return _env().from_string(entry[key])
    except jinja2.TemplateSyntaxError as e:
        raise InputProblem(where + (key,), f"template error in {key}: {e.message}",
                           "templates use Jinja2 syntax, e.g. \"{{ row.caption }}\"", False) from None


class _RowErrors:
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


def _rows(entry: dict, files: InputFiles, where: tuple, errors: _RowErrors) -> tuple[str, Iterator[tuple[str, dict]]]:
    """(kind of row variable, iterator of (row label, variables)). Bad rows go to `errors`."""
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
                p = Path(rel)
                yield f"{rel}", {"file": {"path": p.as_posix(), "name": p.name, "stem": p.stem}}
        return "file", image_rows()
    path = files.resolve(source, "input file", where + ("from",))
    if not path.exists() or path.is_dir():      # a FIFO or a device exists: opening it says what it is
        raise InputProblem(where + ("from",), f"input file {source!r} does not exist",
                           "paths are relative to the spec file", False)

    def csv_rows(f):
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
            # DictReader's __next__, inline: its rows made into dicts here, blank lines skipped
            lines, columns = reader.reader, len(header)
            for fields in lines:
                if not fields:
                    continue
                n += 1
                line = lines.line_num
                start = line + 1
                if len(fields) == columns:
                    yield f"{source} row {n}", {"row": dict(zip(header, fields)), "index": n}
                    continue
                row = dict(zip(header, fields))
                if len(fields) > columns:
                    row[None] = fields[columns:]
                else:
                    row.update(dict.fromkeys(header[len(fields):]))
                if None in row or None in row.values():   # more fields than the header, or fewer
                    width = len(reader.fieldnames) + len(row.get(None, ())) - list(row.values()).count(None)
                    if errors.add(InputProblem(where + ("from",), f"{source} row {n} (line {line}) has "
                                               f"{width} field{'s' if width != 1 else ''}, "
                                               f"the header has {len(reader.fieldnames)}",
                                               "give every row as many fields as the header; quote a field "
                                               "that holds a comma", False)):
                        return
                    continue
                yield f"{source} row {n}", {"row": row, "index": n}
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

    def file_rows():
        try:
            with open_regular(path) as raw:
                hashed = _HashingReader(raw)
                with io.TextIOWrapper(io.BufferedReader(hashed, 1 << 16), encoding="utf-8-sig", newline="") as f:
                    yield from (csv_rows(f) if fmt == "csv" else jsonl_rows(f))
                    f.read()      # hash to the end, whatever the reader left
                files.record(source, hashed.sha.hexdigest(), hashed.size, "input-set", format=fmt)
        except UnicodeDecodeError:
            raise InputProblem(where + ("from",), f"{source} is not UTF-8 text", "save it as UTF-8", False) from None
        except OSError as e:
            raise InputProblem(where + ("from",), f"cannot read {source}: {e.strerror}", None, False) from None
    return "row", file_rows()


def input_set(entry: dict, index: int, files: InputFiles, problems: list[InputProblem]) -> Iterator[Input]:
    """Yield the inputs of one `from:` entry; row errors are collected (up to a cap), not raised."""
    import jinja2

    where = ("inputs", index)
    kinds = [k for k in ("text", "image", "video") if k in entry]
    source = entry["from"]
    errors = _RowErrors(problems, where, source)
    var, rows = _rows(entry, files, where, errors)
    if var == "file" and not kinds:
        kinds = ["image"]
    if len(kinds) != 1:
        raise InputProblem(where, "an input set renders exactly one of text, image or video per row",
                           "e.g. text: \"{{ row.caption }}\"")
    kind = kinds[0]
    value_src = entry.get(kind, "{{ file.path }}")
    tmpl_value = _compile(entry, kind, where) or _env().from_string(value_src)
    tmpl_id = _compile(entry, "id", where)
    fast_value = _chunk_template(value_src, var)
    fast_id = _chunk_template(entry["id"], var) if tmpl_id is not None else None
    # a template of plain text and `{{ row.field }}` needs no Jinja, and stays within the budget
    direct_value = _direct(value_src, var)
    direct_id = _direct(entry["id"], var) if tmpl_id is not None else None
    value_where = where + ((kind,) if kind in entry else ("from",))   # an image folder needs no `image:`
    for chunk in _chunks(rows, CHUNK):
        values, ids = _fill(direct_value, chunk, var), _fill(direct_id, chunk, var)
        bounded = (values is not None, tmpl_id is None or ids is not None)
        values = values if values is not None else _render_chunk(fast_value, chunk, var)
        if ids is None and fast_id is not None:
            ids = _render_chunk(fast_id, chunk, var)
        if kind == "text" and ids is not None and bounded == (True, True):
            # texts and ids filled from the row's strings: nothing to catch; a row that breaks a rule
            # goes through `_row_input`, which says why
            for n, (label, _) in enumerate(chunk):
                value, input_id = values[n], ids[n].strip()
                if ID_RE.match(input_id) and (value.isascii() or not unicode_problem(value)) and value.strip():
                    yield _text_input(input_id, value, where, label)
                else:
                    item = _row_input(input_id, value, kind, label, where, value_where, files, problems)
                    if item is not None:
                        yield item
            continue
        for n, (label, variables) in enumerate(chunk):
            key = kind
            try:
                value = values[n] if values is not None else tmpl_value.render(**variables)
                key = "id"
                if tmpl_id is not None:
                    input_id = (ids[n] if ids is not None else tmpl_id.render(**variables)).strip()
                elif var == "file":
                    input_id = variables["file"]["stem"]
                else:
                    row = variables["row"]
                    input_id = (str(row["id"]) if row.get("id") not in (None, "")
                                else f"{Path(source).stem}-{variables['index']}")
                for key, text, src, ok in (() if bounded == (True, True) else
                                           ((kind, value, value_src, bounded[0]),
                                            ("id", input_id, entry.get("id", ""), bounded[1]))):
                    if not ok and len(text) > _template_budget(src, variables):
                        given = variables.get("row", variables.get("file", {}))
                        raise Amplified(f"the `{key}` template prints {len(text):,} characters for a row of "
                                        f"{sum(len(str(v)) for v in given.values()):,}")
            except jinja2.UndefinedError as e:
                fields = ", ".join(sorted(variables.get("row", variables.get("file", {})).keys()))
                if errors.add(InputProblem(where, f"{label}: {e.message}", f"fields available: {fields}")):
                    return
                continue
            except Amplified as e:
                if errors.add(InputProblem(where + (key,), f"{label}: {e}",
                                           "a template may repeat a row's fields, not multiply them: "
                                           f"it may print at most {TEMPLATE_GROWTH}× the row's characters", False)):
                    return
                continue
            except NotText as e:
                if errors.add(InputProblem(where + (key,), f"{label}: {e} (in `{key}`)",
                                           "give the row a string there, or pick one value, e.g. "
                                           "{{ row.tags | join(' ') }}", False)):
                    return
                continue
            except Exception as e:   # a template may fail any way Python can: 1/0, "1" + 1, ...
                what = str(e) if isinstance(e, jinja2.TemplateError) else f"{type(e).__name__}: {e}"
                hint = ("CSV fields are text: convert with | int or | float before arithmetic"
                        if isinstance(e, TypeError) else "fix the expression for this row's values")
                problem = InputProblem(where + (key,), f"{label}: the `{key}` template fails: {what}", hint, False)
                if errors.add(problem):
                    return
                continue
            item = _row_input(input_id, value, kind, label, where, value_where, files, problems)
            if item is not None:
                yield item


def _row_input(input_id, value, kind, label, where, value_where, files, problems) -> Input | None:
    if not ID_RE.match(input_id):
        problems.append(InputProblem(where + ("id",), f"{label}: id {input_id!r} is not a valid input id",
                                     "ids use letters, digits and . _ : @ - and start with a letter or digit"))
        return None
    bad = unicode_problem(value)
    if bad:
        problems.append(InputProblem(value_where, f"{label}: {bad}", "fix that row of the file", False))
        return None
    if kind == "text":
        if not value.strip():
            problems.append(InputProblem(value_where, f"{label}: the text is empty", "drop the row or fill it"))
            return None
        return _text_input(input_id, value, where, label)
    try:
        part = media_part(kind, value, files, value_where)
    except InputProblem as p:
        problems.append(InputProblem(p.where, f"{label}: {p.message}", p.hint, p.prefer_key))
        return None
    return Input(input_id, kind, (part,), where, label)


_new = object.__new__
if [f.name for f in dataclasses.fields(Input)] != ["id", "modality", "parts", "where", "row", "models"] or \
        [f.name for f in dataclasses.fields(Part)] != ["kind", "value", "image", "video"]:   # pragma: no cover
    raise ImportError("_text_input sets every field of Input and Part: update it")


def _text_input(input_id: str, value: str, where: tuple, label: str) -> Input:
    """`Input(input_id, "text", (Part("text", value),), where, label)`, its fields set directly: half
    the time of the frozen dataclasses' __init__, a million times over in a big input set."""
    part = _new(Part)
    part.__dict__.update(kind="text", value=value, image=None, video=None)
    inp = _new(Input)
    inp.__dict__.update(id=input_id, modality="text", parts=(part,), where=where, row=label, models=None)
    return inp


# Rendering a template costs mostly its per-call context; rendering a chunk of rows inside one
# loop costs a tenth as much. Any error, block tag or separator in the output falls back to
# rendering row by row, which reports the exact row.
CHUNK = 512
_SEP = "\x1e"


def _chunks(rows, size):
    chunk = []
    for item in rows:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# `{{ row.caption }}`, `t-{{ row.id }}`: text without braces or line ends around a few fields printed as
# they are. Jinja gives the same string when the field is a str (a dict's own attribute, like `items`,
# is what Jinja would print instead, so those names are left to it); at most TEMPLATE_GROWTH fields, so
# what it prints is within `_template_budget` by construction. Anything else renders through Jinja.
_FIELD = re.compile(r"\{\{\s*(row|file)\.([A-Za-z][A-Za-z0-9_]*)\s*\}\}")
_LITERAL = re.compile(r"[^{}\r\n]*")


def _direct(source: str, var: str) -> list | None:
    """The template as [literal, field, literal, ...] when it is only text and fields of `var`, else None."""
    pieces, at = [], 0
    for m in _FIELD.finditer(source):
        if m.group(1) != var or hasattr(dict, m.group(2)) or not _LITERAL.fullmatch(source, at, m.start()):
            return None
        pieces += [source[at:m.start()], m.group(2)]
        at = m.end()
    if not pieces or len(pieces) // 2 > TEMPLATE_GROWTH or not _LITERAL.fullmatch(source, at):
        return None
    return pieces + [source[at:]]


def _fill(pieces: list | None, chunk: list, var: str) -> list[str] | None:
    """Each row's text from `_direct` pieces; None when a field is missing or not a string (Jinja then
    renders, and says what is wrong)."""
    if pieces is None:
        return None
    if len(pieces) == 3:        # one field, `{{ row.text }}`, `t-{{ row.id }}`: the whole chunk at once
        head, name, tail = pieces
        values = [variables[var].get(name) for _, variables in chunk]
        if set(map(type, values)) - {str}:
            return None
        return values if not head and not tail else [head + v + tail for v in values]
    out = []
    for _, variables in chunk:
        fields = variables[var]
        text = pieces[0]
        for i in range(1, len(pieces), 2):
            value = fields.get(pieces[i])
            if type(value) is not str:
                return None
            text += value + pieces[i + 1]
        out.append(text)
    return out


def _chunk_template(source: str, var: str) -> jinja2.Template | None:
    import jinja2

    if "{%" in source or "{#" in source or _SEP in source:
        return None
    head = "{% for row, index in rows %}" if var == "row" else "{% for file in rows %}"
    try:
        return _env().from_string(head + source + _SEP + "{% endfor %}")
    except jinja2.TemplateError:
        return None


def _render_chunk(template: jinja2.Template | None, chunk: list, var: str) -> list[str] | None:
    if template is None:
        return None
    rows = [(v["row"], v["index"]) for _, v in chunk] if var == "row" else [v["file"] for _, v in chunk]
    try:
        parts = template.render(rows=rows).split(_SEP)
    except Exception:   # any failure: the row-by-row pass names the row
        return None
    return parts[:-1] if len(parts) == len(chunk) + 1 else None

