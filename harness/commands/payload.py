"""harness payload OUTPUT_DIR CELL N: request N's body of a cell, byte for byte, on stdout."""

from __future__ import annotations

import sys

from harness.errors import ExitCode, MismatchError, Problem, UsageError

NAME = "payload"
HELP = "print request N of a cell of an output folder, byte for byte (the exact body sent or to be sent)"
ORDER = 58
DESCRIPTION = (HELP + ". N counts from 1 in request order, the line of payloads/<cell>/index.jsonl (request 1 is "
               "00001.json); the body is the canonical JSON the run hashed, without a trailing newline, whichever "
               "payload layout the folder has (one file per request before evidence format 3, one requests.jsonl "
               "per cell from it). Its sha256 is checked against the index first.")
EPILOG = ("exit codes: 0 printed · 2 no output folder there, no such cell, or no request N (the message names "
          "the cells or the count) · 5 the folder cannot be read there, or the body does not match the sha256 "
          "its index records (nothing printed; `harness verify` says more)")


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("folder", metavar="OUTPUT_DIR", help="an output folder written by `harness run`")
    p.add_argument("cell", metavar="CELL", help="a cell id, e.g. qwen3-vl-embedding-1024 (`harness plan` lists them)")
    p.add_argument("n", metavar="N", help="the request number, from 1 (or its name, e.g. 00001.json)")
    return p


def request_number(text: str) -> int:
    """N as given: `7`, or the request's name `00007.json`."""
    raw = text[:-5] if text.endswith(".json") else text
    if raw.isascii() and raw.isdigit() and len(raw) <= 18 and int(raw) >= 1:     # no 5,000-digit int()
        return int(raw)
    raise UsageError(Problem(f"N {text[:40]!r} is not a request number",
                             hint="give a number from 1, e.g. 1 or 00001.json"))


def run(args) -> int:
    from harness.evidence import sha256_bytes
    from harness.folder import FolderError, layout, open_run
    from harness.folder.reader import NotARun
    from harness.words import counted

    n = request_number(args.n)
    try:
        run_ = open_run(args.folder)
    except NotARun as exc:
        raise UsageError(Problem(f"{args.folder}: not an output folder ({exc.why})",
                                 hint="give the output folder of a run, e.g. output/<spec name>")) from None
    except FolderError as exc:
        raise MismatchError(Problem(f"{args.folder}: {exc}", hint="`harness verify` says what is wrong")) from None
    cells = run_.manifest.cell_ids
    if args.cell not in cells:
        raise UsageError(Problem(f"{args.folder} has no cell {args.cell!r}",
                                 hint=f"its cells: {', '.join(cells) or 'none'}"))
    read, fmt = run_.read, run_.manifest.format
    try:
        entries = read.payload_index(args.cell)
        if n > len(entries):
            raise UsageError(Problem(f"cell {args.cell} has {counted(len(entries), 'request')}, "
                                     f"not a request {n}", hint=f"give N from 1 to {len(entries)}"))
        body = read.payload_body(args.cell, n, fmt)
    except FolderError as exc:
        raise MismatchError(Problem(f"{args.folder}: {exc}", hint="`harness verify` says what is wrong")) from None
    recorded = entries[n - 1].get("sha256")
    if sha256_bytes(body) != recorded:
        raise MismatchError(Problem(f"request {n} of {args.cell} does not match the sha256 "
                                    f"{layout.payload_index(args.cell)} records for it; nothing printed",
                                    hint=f"`harness verify {args.folder}` says what changed"))
    out = sys.stdout.buffer
    out.write(body)
    out.flush()
    return int(ExitCode.OK)
