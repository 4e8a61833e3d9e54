"""harness diff RUN_A RUN_B: what differs between two runs; with a tolerance, a CI gate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from harness.commands import flags
from harness.errors import ExitCode, Problem, UsageError

NAME = "diff"
HELP = ("compare two output folders: cells, payloads, inputs, per-input vector cosine, metric deltas with their "
        "interval and paired p-value")
ORDER = 61


def _pair(text: str) -> tuple[str, str]:
    a, sep, b = text.partition(":")
    if not sep or not a or not b:
        raise argparse.ArgumentTypeError(f"{text!r}: use CELL_A:CELL_B, "
                                         "e.g. qwen3-vl-embedding-1024:openai--qwen3-vl-embedding-8b-1024")
    return a, b


def _max_drop(text: str) -> tuple[str, float]:
    from harness.checks.metrics import METRIC_PATTERN

    metric, sep, margin = text.partition("=")
    try:
        value = float(margin)
    except ValueError:
        value = -1.0
    if not sep or not METRIC_PATTERN.match(metric) or not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: use METRIC=MARGIN, a retrieval metric and a margin from 0 to 1, "
                                         "e.g. ndcg@10=0.02")
    return metric, value


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: a significance level between 0 and 1, e.g. 0.05")
    return value


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". Vectors are matched by input id, so runs of "
                       "different providers or models over the same inputs compare. Without a tolerance the "
                       "diff only informs (exit 0).",
                       epilog="exit codes: 0 no tolerance given, or within it (a drop --max-drop finds not "
                              "significant is a warning) · 5 outside the tolerance, or a significant drop beyond "
                              "--max-drop "
                              "(VERIFY_MISMATCH) · 2 a folder is not a run, or --html names a folder, a path "
                              "inside either run or a place that cannot be written")
    p.add_argument("a", metavar="RUN_A", help="output folder of the reference run")
    p.add_argument("b", metavar="RUN_B", help="output folder of the run to compare")
    p.add_argument("--tolerance", type=flags.cosine_distance, metavar="X",
                   help="gate: every input's cosine between the runs must be ≥ 1 − X (X from 0 to 2), with the "
                        "same dimension and inputs, e.g. 0.001")
    p.add_argument("--metric-tolerance", type=flags.metric_change, metavar="Y",
                   help="gate: every retrieval metric may move by at most Y (0 to 1), e.g. 0.02")
    p.add_argument("--max-drop", type=_max_drop, action="append", metavar="METRIC=MARGIN",
                   help="gate (repeatable): fail when B is worse than A on METRIC by more than MARGIN and the drop "
                        "is significant (paired sign-flip test over the check's queries, p < --alpha); a larger "
                        "drop that is not significant is a warning with its p-value, e.g. ndcg@10=0.02. Use it to "
                        "ask 'did this change hurt us' of runs over a few queries; --metric-tolerance judges any "
                        "change, significant or not")
    p.add_argument("--alpha", type=_alpha, default=0.05, metavar="P",
                   help="significance level of --max-drop, and 1 − the level of the deltas' intervals (default 0.05)")
    p.add_argument("--pair", type=_pair, action="append", metavar="CELL_A:CELL_B",
                   help="compare these two cells (repeatable); by default equal cell ids pair, "
                        "then unambiguous leftovers")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    p.add_argument("--html", metavar="FILE",
                   help="also write the comparison as one self-contained page: per cell pair the metric deltas, "
                        "a histogram of the per-input cosine A↔B and the inputs that moved most, e.g. diff.html "
                        "(written whatever the verdict; never inside either run folder)")
    return p


def _html_target(text: str, runs: list[str]) -> Path:
    """Where the page goes; refused (exit 2) when it is a folder or inside a run folder, whose
    manifest would then hold a file it does not record."""
    path = Path(text)
    if path.is_dir():
        raise UsageError(Problem(f"--html {text} is a folder", hint="give a file name, e.g. diff.html"))
    where = path.resolve()
    for run in runs:
        if where.is_relative_to(Path(run).resolve()):
            raise UsageError(Problem(f"--html {text} is inside the run folder {run}",
                                       hint="write it beside the runs, e.g. --html diff.html; a run folder "
                                            "holds only what its manifest records"))
    return path


def run(args) -> int:
    from harness.audit.diff import diff_runs, render_diff

    html = _html_target(args.html, [args.a, args.b]) if args.html else None
    report = diff_runs(args.a, args.b, pairs=args.pair, tolerance=args.tolerance,
                       metric_tolerance=args.metric_tolerance, max_drop=dict(args.max_drop or []), alpha=args.alpha)
    if html is not None:
        from harness.audit.diff_html import render_diff_html
        from harness.evidence import atomic_write

        try:
            atomic_write(html, render_diff_html(report))
        except OSError as exc:
            raise UsageError(Problem(f"--html {args.html}: cannot write it: {exc.strerror or exc}",
                                       hint="choose a writable place")) from None
    if args.json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        print(render_diff(report))
    if not report.ok:
        return int(ExitCode.VERIFY_MISMATCH)
    # a gate that compared nothing passes nothing, as `run --execute` with no cell executed
    return int(ExitCode.NOTHING_EXECUTED if report.gated and not report.compared else ExitCode.OK)
