"""Spec inputs → `Input` values: inline items and input sets read from CSV, JSONL or image folders.

Texts and ids of input sets are Jinja2 templates rendered in a sandbox with strict undefined
variables, so a typo in `{{ row.captoin }}` is an error naming the row, not an empty string.
"""

from __future__ import annotations

import csv
import functools
import glob
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from harness.estimate import text_tokens
from harness.evidence import canonical_json, sha256_bytes
from harness.media import LocalImage, MediaError, inspect_local_image, is_data_uri, is_url

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\Z")   # \Z: "$" would let a trailing newline in
MODALITY_KEYS = ("text", "image", "video", "multi_images", "fused")
MAX_TEMPLATE_ERRORS = 20

_ENV = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


@dataclass(frozen=True)
class Part:
    """One modality of an input. `value` is the text or the URL; `image` is set for local files."""

    kind: str                              # "text" | "image" | "video"
    value: str
    image: LocalImage | None = None

    def ref(self) -> dict:
        if self.image is not None:
            return self.image.ref()
        if self.kind == "text":
            return {"kind": "text", "sha256": sha256_bytes(self.value.encode("utf-8")), "chars": len(self.value)}
        return {"kind": self.kind, "url": self.value if not is_data_uri(self.value) else "data:…",
                **({"sha256": sha256_bytes(self.value.encode())} if is_data_uri(self.value) else {})}

    def wire(self) -> str:
        return self.image.data_uri() if self.image is not None else self.value


@dataclass(frozen=True)
class Input:
    id: str
    modality: str                           # "text" | "image" | "video" | "multi_images" | "fused"
    parts: tuple[Part, ...]                 # multi_images: several image parts
    where: tuple                            # path of the spec entry that produced it
    row: str | None = None                  # "data/captions.csv row 3" for input sets

    @functools.cached_property
    def text_tokens(self) -> int:
        """Estimated tokens of the text parts (model-independent), computed once for all cells."""
        return sum(text_tokens(p.value) for p in self.parts if p.kind == "text")

    def ref(self) -> dict:
        return {"id": self.id, "modality": self.modality, "parts": [p.ref() for p in self.parts],
                **({"from": self.row} if self.row else {})}

    def count(self, kind: str) -> int:
        if len(self.parts) == 1:  # the common case, on the hot path of batching
            return 1 if self.parts[0].kind == kind else 0
        return sum(1 for p in self.parts if p.kind == kind)


class InputProblem(Exception):
    def __init__(self, where: tuple, message: str, hint: str | None = None, prefer_key: bool = True):
        super().__init__(message)
        self.where, self.message, self.hint, self.prefer_key = where, message, hint, prefer_key


def _media_part(kind: str, value: str, base_dir: Path, where: tuple) -> Part:
    value = value.strip()
    if kind == "video":
        if not is_url(value):
            raise InputProblem(where, f"video {value!r} is not a URL",
                               "the API takes videos only as http(s):// or oss:// URLs; upload the file first", False)
        return Part("video", value)
    if is_url(value):
        return Part("image", value)
    if is_data_uri(value):
        head = value.split(",", 1)[0]
        if not re.match(r"^data:image/[a-z0-9.+-]+;base64$", head):
            raise InputProblem(where, "an inline image must be data:image/<format>;base64,...", None, False)
        return Part("image", value)
    try:
        return Part("image", value, inspect_local_image(value, base_dir))
    except MediaError as e:
        raise InputProblem(where, e.message, e.hint, False) from None


def _default_id(modality: str, parts: tuple[Part, ...]) -> str:
    digest = sha256_bytes(canonical_json([p.ref() for p in parts]))
    return f"{modality}-{digest[:12]}"


def inline_input(entry: dict, index: int, base_dir: Path) -> Input:
    where = ("inputs", index)
    key = next(k for k in MODALITY_KEYS if k in entry)
    value = entry[key]
    if key == "text":
        parts: tuple[Part, ...] = (Part("text", value),)
    elif key in ("image", "video"):
        parts = (_media_part(key, value, base_dir, where + (key,)),)
    elif key == "multi_images":
        parts = tuple(_media_part("image", v, base_dir, where + (key, i)) for i, v in enumerate(value))
    else:
        fused = []
        if "text" in value:
            fused.append(Part("text", value["text"]))
        images = value.get("image", [])
        for i, v in enumerate([images] if isinstance(images, str) else images):
            fused.append(_media_part("image", v, base_dir, where + ("fused", "image") + ((i,) if not isinstance(images, str) else ())))
        if "video" in value:
            fused.append(_media_part("video", value["video"], base_dir, where + ("fused", "video")))
        if len(fused) < 2:
            raise InputProblem(where + ("fused",), "a fused input needs at least two parts (text, image(s), video)",
                               "for a single modality use text:, image: or video:")
        parts = tuple(fused)
    input_id = entry.get("id") or _default_id(key, parts)
    if not ID_RE.match(input_id):
        raise InputProblem(where + ("id",), f"inputs[{index}].id {input_id!r} is not a valid input id",
                           "ids use letters, digits and . _ : @ - and start with a letter or digit", False)
    return Input(input_id, key, parts, where)


# -- input sets -------------------------------------------------------------------------------

def _compile(entry: dict, key: str, where: tuple) -> jinja2.Template | None:
    if key not in entry:
        return None
    try:
        return _ENV.from_string(entry[key])
    except jinja2.TemplateSyntaxError as e:
        raise InputProblem(where + (key,), f"template error in {key}: {e.message}",
                           "templates use Jinja2 syntax, e.g. \"{{ row.caption }}\"", False) from None


def _rows(entry: dict, base_dir: Path, where: tuple) -> tuple[str, Iterator[tuple[str, dict]]]:
    """(kind of row variable, iterator of (row label, variables))."""
    source = entry["from"]
    fmt = entry.get("format")
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
        pattern = str(path / "*") if path.is_dir() else str(path)
        files = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
        if not files:
            raise InputProblem(where + ("from",), f"no files match {source!r}", "check the folder or glob", False)

        def image_rows():
            for f in files:
                rel = os.path.relpath(f, base_dir)
                p = Path(rel)
                yield f"{rel}", {"file": {"path": p.as_posix(), "name": p.name, "stem": p.stem}}
        return "file", image_rows()
    if not path.is_file():
        raise InputProblem(where + ("from",), f"input file {source!r} does not exist",
                           "paths are relative to the spec file", False)

    def file_rows():
        try:
            with open(path, encoding="utf-8-sig", newline="") as f:
                if fmt == "csv":
                    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
                    for n, row in enumerate(csv.DictReader(f, dialect=dialect), start=1):
                        yield f"{source} row {n}", {"row": row, "index": n}
                else:
                    for n, line in enumerate(f, start=1):
                        if not line.strip():
                            continue
                        try:
                            row = json.loads(line)
                        except json.JSONDecodeError as e:
                            raise InputProblem(where + ("from",), f"{source} line {n} is not valid JSON: {e.msg}",
                                               "JSONL holds one JSON object per line", False) from None
                        if not isinstance(row, dict):
                            raise InputProblem(where + ("from",), f"{source} line {n} is not a JSON object", None, False)
                        yield f"{source} line {n}", {"row": row, "index": n}
        except UnicodeDecodeError:
            raise InputProblem(where + ("from",), f"{source} is not UTF-8 text", "save it as UTF-8", False) from None
        except OSError as e:
            raise InputProblem(where + ("from",), f"cannot read {source}: {e.strerror}", None, False) from None
    return "row", file_rows()


def input_set(entry: dict, index: int, base_dir: Path, problems: list[InputProblem]) -> Iterator[Input]:
    """Yield the inputs of one `from:` entry; template errors are collected (up to a cap), not raised."""
    where = ("inputs", index)
    kinds = [k for k in ("text", "image", "video") if k in entry]
    var, rows = _rows(entry, base_dir, where)
    if var == "file" and not kinds:
        kinds = ["image"]
    if len(kinds) != 1:
        raise InputProblem(where, "an input set renders exactly one of text, image or video per row",
                           "e.g. text: \"{{ row.caption }}\"")
    kind = kinds[0]
    value_src = entry.get(kind, "{{ file.path }}")
    tmpl_value = _compile(entry, kind, where) or _ENV.from_string(value_src)
    tmpl_id = _compile(entry, "id", where)
    fast_value = _chunk_template(value_src, var)
    fast_id = _chunk_template(entry["id"], var) if tmpl_id is not None else None
    source = entry["from"]
    errors = 0
    for chunk in _chunks(rows, CHUNK):
        values = _render_chunk(fast_value, chunk, var)
        ids = _render_chunk(fast_id, chunk, var) if fast_id is not None else None
        for n, (label, variables) in enumerate(chunk):
            try:
                value = values[n] if values is not None else tmpl_value.render(**variables)
                if tmpl_id is not None:
                    input_id = (ids[n] if ids is not None else tmpl_id.render(**variables)).strip()
                elif var == "file":
                    input_id = variables["file"]["stem"]
                else:
                    row = variables["row"]
                    input_id = str(row["id"]) if row.get("id") not in (None, "") else f"{Path(source).stem}-{variables['index']}"
            except jinja2.UndefinedError as e:
                errors += 1
                keys = ", ".join(sorted(variables.get("row", variables.get("file", {})).keys()))
                problems.append(InputProblem(where, f"{label}: {e.message}", f"fields available: {keys}"))
                if errors >= MAX_TEMPLATE_ERRORS:
                    problems.append(InputProblem(where, f"stopped after {MAX_TEMPLATE_ERRORS} template errors in {source}"))
                    return
                continue
            except jinja2.TemplateError as e:
                errors += 1
                problems.append(InputProblem(where, f"{label}: template error: {e}"))
                if errors >= MAX_TEMPLATE_ERRORS:
                    return
                continue
            item = _row_input(input_id, value, kind, var, label, where, base_dir, problems)
            if item is not None:
                yield item


def _row_input(input_id, value, kind, var, label, where, base_dir, problems) -> Input | None:
    if not ID_RE.match(input_id):
        problems.append(InputProblem(where + ("id",), f"{label}: id {input_id!r} is not a valid input id",
                                     "ids use letters, digits and . _ : @ - and start with a letter or digit"))
        return None
    if kind == "text":
        if not value.strip():
            problems.append(InputProblem(where + (kind,), f"{label}: the text is empty", "drop the row or fill it"))
            return None
        part = Part("text", value)
    else:
        try:
            part = _media_part(kind, value, base_dir, where + (kind,))
        except InputProblem as p:
            problems.append(InputProblem(p.where, f"{label}: {p.message}", p.hint, p.prefer_key))
            return None
    return Input(input_id, kind, (part,), where, label)


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


def _chunk_template(source: str, var: str) -> jinja2.Template | None:
    if "{%" in source or "{#" in source or _SEP in source:
        return None
    head = "{% for row, index in rows %}" if var == "row" else "{% for file in rows %}"
    try:
        return _ENV.from_string(head + source + _SEP + "{% endfor %}")
    except jinja2.TemplateError:
        return None


def _render_chunk(template: jinja2.Template | None, chunk: list, var: str) -> list[str] | None:
    if template is None:
        return None
    rows = [(v["row"], v["index"]) for _, v in chunk] if var == "row" else [v["file"] for _, v in chunk]
    try:
        parts = template.render(rows=rows).split(_SEP)
    except jinja2.TemplateError:
        return None
    return parts[:-1] if len(parts) == len(chunk) + 1 else None


def iter_inputs(entries: list[dict], base_dir: Path, problems: list[InputProblem]) -> Iterator[Input]:
    """Every input of the spec in order. Problems are appended to `problems`; bad inputs are skipped."""
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        try:
            if "from" in entry:
                yield from input_set(entry, index, base_dir, problems)
            elif any(k in entry for k in MODALITY_KEYS):
                yield inline_input(entry, index, base_dir)
        except InputProblem as p:
            problems.append(p)

