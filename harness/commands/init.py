"""harness init: write a starter spec that editors validate against the schema."""

from __future__ import annotations

import os
from pathlib import Path

from harness.errors import HarnessError, Problem
from harness.evidence import atomic_write
from harness.spec import SCHEMA_DIR, SPEC_SCHEMA

NAME = "init"
HELP = "write a starter spec (with the yaml-language-server schema line for editors)"
ORDER = 5

STARTER = """\
# yaml-language-server: $schema={schema}
# A starter spec. `harness validate {name}` checks it; `harness plan {name}` shows the requests;
# `harness run {name}` writes the payloads and the evidence to output/{stem}/.
version: 1
name: {stem}
description: Does a caption find its own photo?
region: cn-beijing
models:
  - qwen3-vl-embedding
dimensions: [1024, 256]
parameters:
  instruct: Retrieve the image that matches the caption.
inputs:
  - id: cat-caption
    text: A cat sitting on a red chair
  - id: cat-photo
    image: https://example.com/cat.jpg
"""


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ".")
    p.add_argument("path", nargs="?", default="spec.yaml", help="where to write it (default spec.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    return p


def run(args) -> int:
    path = Path(args.path)
    if path.exists() and not args.force:
        raise HarnessError(Problem(f"{path} already exists", hint="choose another path or pass --force"))
    stem = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.stem).strip(".-_") or "experiment"
    schema = os.path.relpath((SCHEMA_DIR / SPEC_SCHEMA).resolve(), path.resolve().parent)
    atomic_write(path, STARTER.format(schema=schema, name=path, stem=stem).encode("utf-8"))
    print(f"wrote {path}; next: harness validate {path}")
    return 0
