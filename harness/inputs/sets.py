"""Input sets: one input per row of a CSV or JSONL file, or per file of an image folder or glob.

Texts and ids of input sets are Jinja2 templates rendered in a sandbox with strict undefined
variables, so a typo in `{{ row.captoin }}` is an error naming the row, not an empty string.
The file is read a chunk of rows at a time (`harness.inputs.rows`); a chunk of texts whose rows keep
every rule is one `TextRun`.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from harness.inputs.files import InputFiles, media_part
from harness.inputs.rows import CsvRows, RowErrors, read_rows
from harness.inputs.types import ID_RE, Input, InputProblem, TextRun, text_input, unicode_problem

if TYPE_CHECKING:       # annotations only: jinja2 is imported where input sets are read
    import jinja2

# A template may repeat a row's fields (`{{ row.a }}: {{ row.a }}`), not multiply them: what it prints
# for a row is bounded by its own length, this many times the row's characters, and a little slack.
# Without it `{{ row.t * 1000000 }}` over a long CSV is an alias bomb by another path (GBs of payloads).
TEMPLATE_GROWTH, TEMPLATE_SLACK = 8, 4096


def _template_budget(template: str, variables: dict) -> int:
    fields = variables.get("row", variables.get("file", {}))
    return len(template) + TEMPLATE_GROWTH * sum(len(str(v)) for v in fields.values()) + TEMPLATE_SLACK


class NotText(Exception):
    """A template printed a value that has no text form (null, a list, an object)."""


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


def input_set(entry: dict, index: int, files: InputFiles, problems: list[InputProblem]) -> Iterator[Input | TextRun]:
    """Yield the inputs of one `from:` entry, a chunk of texts as one `TextRun`; row errors are collected
    (up to a cap), not raised."""
    import jinja2

    where = ("inputs", index)
    kinds = [k for k in ("text", "image", "video") if k in entry]
    source = entry["from"]
    errors = RowErrors(problems, where, source)
    var, rows = read_rows(entry, files, where, errors)
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
    for chunk in rows:
        values, ids = _fill(direct_value, chunk, var), _fill(direct_id, chunk, var)
        bounded = (values is not None, tmpl_id is None or ids is not None)
        values = values if values is not None else _render_chunk(fast_value, chunk, var)
        if ids is None and fast_id is not None:
            ids = _render_chunk(fast_id, chunk, var)
        if kind == "text" and bounded == (True, True) and (ids is not None or var == "row"):
            # texts and ids filled from the row's strings (or the default ids): nothing to catch. A chunk
            # whose rows all keep the rules is one TextRun; else each row goes through `_row_input`, which
            # says why
            ids = [i.strip() for i in ids] if ids is not None else _default_ids(chunk, source)
            run = _text_run(ids, values, chunk.labels, where)
            if run is not None:
                yield run
                continue
            for n, label in enumerate(chunk.labels):
                value, input_id = values[n], ids[n]
                if ID_RE.match(input_id) and (value.isascii() or not unicode_problem(value)) and value.strip():
                    yield text_input(input_id, value, where, label)
                else:
                    item = _row_input(input_id, value, kind, label, where, value_where, files)
                    if isinstance(item, InputProblem):
                        if errors.add(item):
                            return
                        continue
                    yield item
            continue
        defaults = None
        for n, (label, variables) in enumerate(chunk.pairs):
            key = kind
            try:
                value = values[n] if values is not None else tmpl_value.render(**variables)
                key = "id"
                if tmpl_id is not None:
                    input_id = (ids[n] if ids is not None else tmpl_id.render(**variables)).strip()
                elif var == "file":
                    input_id = variables["file"]["stem"]
                else:
                    defaults = defaults or _default_ids(chunk, source)
                    input_id = defaults[n]
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
            item = _row_input(input_id, value, kind, label, where, value_where, files)
            if isinstance(item, InputProblem):
                if errors.add(item):
                    return
                continue
            yield item


def _row_input(input_id, value, kind, label, where, value_where, files) -> Input | InputProblem:
    """A row's input, or the problem that keeps it out (counted with the set's other row errors)."""
    if not ID_RE.match(input_id):
        return InputProblem(where + ("id",), f"{label}: id {input_id!r} is not a valid input id",
                            "ids use letters, digits and . _ : @ - and start with a letter or digit")
    bad = unicode_problem(value)
    if bad:
        return InputProblem(value_where, f"{label}: {bad}", "fix that row of the file", False)
    if kind == "text":
        if not value.strip():
            return InputProblem(value_where, f"{label}: the text is empty", "drop the row or fill it")
        return text_input(input_id, value, where, label)
    try:
        part = media_part(kind, value, files, value_where)
    except InputProblem as p:
        return InputProblem(p.where, f"{label}: {p.message}", p.hint, p.prefer_key)
    return Input(input_id, kind, (part,), where, label)


def _default_ids(chunk, source: str) -> list[str]:
    """Each row's id without an `id:` template: its `id` field, else "<file stem>-<row number>"."""
    stem = Path(source).stem
    if isinstance(chunk, CsvRows):
        column = chunk.column("row", "id") or [""] * len(chunk)
        return [v if v != "" else f"{stem}-{n}" for v, n in zip(column, chunk.numbers)]
    return [str(row["id"]) if row.get("id") not in (None, "") else f"{stem}-{variables['index']}"
            for _, variables in chunk.pairs for row in (variables["row"],)]


def _text_run(ids: list[str], values: list[str], labels: list[str], where: tuple) -> TextRun | None:
    """The chunk's rows as one TextRun when every id is valid and every text non-blank, valid UTF-8."""
    if not all(map(ID_RE.match, ids)) or not all(map(str.strip, values)):
        return None
    try:
        data = [v.encode("utf-8") for v in values]
    except UnicodeEncodeError:      # a lone surrogate: `unicode_problem` names it, row by row
        return None
    return TextRun(where, ids, values, labels, data=data)


# Rendering a template costs mostly its per-call context; rendering a chunk of rows inside one
# loop costs a tenth as much. Any error, block tag or separator in the output falls back to
# rendering row by row, which reports the exact row.
_SEP = "\x1e"


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


def _fill(pieces: list | None, chunk, var: str) -> list[str] | None:
    """Each row's text from `_direct` pieces; None when a field is missing or not a string (Jinja then
    renders, and says what is wrong)."""
    if pieces is None:
        return None
    columns = [chunk.column(var, pieces[i]) for i in range(1, len(pieces), 2)]
    if any(c is None for c in columns):
        return None
    if len(pieces) == 3:        # one field, `{{ row.text }}`, `t-{{ row.id }}`: the whole chunk at once
        head, _, tail = pieces
        return columns[0] if not head and not tail else [head + v + tail for v in columns[0]]
    out = []
    for fields in zip(*columns):
        text = pieces[0]
        for i, value in enumerate(fields):
            text += value + pieces[2 * i + 2]
        out.append(text)
    return out


def _chunk_template(source: str, var: str) -> jinja2.Template | None:
    import jinja2
    from jinja2 import meta

    if "{%" in source or "{#" in source or _SEP in source:
        return None
    head = "{% for row, index in rows %}" if var == "row" else "{% for file in rows %}"
    try:
        # a template naming anything but its own row's variables (`rows`, `loop`: the chunk's loop) is
        # rendered row by row, where such a name is undefined, as it must be
        if not meta.find_undeclared_variables(_env().parse(source)) <= ({"row", "index"} if var == "row" else {"file"}):
            return None
        return _env().from_string(head + source + _SEP + "{% endfor %}")
    except jinja2.TemplateError:
        return None


def _render_chunk(template: jinja2.Template | None, chunk: list, var: str) -> list[str] | None:
    if template is None:
        return None
    rows = [(v["row"], v["index"]) for _, v in chunk.pairs] if var == "row" else [v["file"] for _, v in chunk.pairs]
    try:
        parts = template.render(rows=rows).split(_SEP)
    except Exception:   # any failure: the row-by-row pass names the row
        return None
    return parts[:-1] if len(parts) == len(chunk) + 1 else None

