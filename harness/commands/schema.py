"""harness schema: print the spec's JSON Schema (or its path, for editors)."""

from __future__ import annotations

import sys

from harness.spec.load import SCHEMA_DIR, SPEC_SCHEMA

NAME = "schema"
HELP = "print the spec JSON Schema (--path: where it is, for editors)"
ORDER = 60


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ".")
    p.add_argument("--path", action="store_true", help="print the file's path instead of its contents")
    p.add_argument("--markdown", action="store_true", help="print the spec reference as a Markdown table")
    return p


def run(args) -> int:
    path = SCHEMA_DIR / SPEC_SCHEMA
    if args.markdown:
        from harness.spec.schemadoc import spec_reference
        sys.stdout.write(spec_reference())
    elif args.path:
        print(path.resolve())
    else:
        sys.stdout.write(path.read_text(encoding="utf-8"))
    return 0
