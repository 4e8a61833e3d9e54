"""harness plan SPEC: print the expansion (cells, requests, contents, modality mix, estimates)."""

from __future__ import annotations

import json
import sys

from rich.markup import escape

from harness.catalog.estimate import money_totals
from harness.commands import add_allow_host, add_allow_path, add_filters, add_max_payload, cell_filter, host_grants
from harness.plan.build import load_plan
from harness.plan.write import counting, plan_stats
from harness.report.terminal import make_console, print_cells
from harness.words import counted

NAME = "plan"
HELP = "print the cells, requests, contents, modality mix and estimated tokens/cost; writes nothing"
ORDER = 20


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ".")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument("--base-url", help="DashScope native API base URL (default: the spec's region)")
    add_allow_host(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON instead of a table")
    add_allow_path(p)
    add_max_payload(p)
    add_filters(p, "print")
    return p


def run(args) -> int:
    with load_plan(args.spec, base_url=args.base_url, allow_paths=args.allow_paths, max_payload=args.max_payload,
                   allow_hosts=host_grants(args), cell_filter=cell_filter(args), writer=counting) as plan:
        stats = plan_stats(plan)
        cells = [{**cell.manifest_entry(), **stats[cell.id].as_dict()} for cell in plan.cells]
        if args.json:
            json.dump({"spec": plan.spec.name, "inputs": plan.input_count, "cells": cells}, sys.stdout, indent=2)
            print()
            return 0
        console = make_console()
        for w in plan.warnings:
            console.print(f"[yellow]{escape(w.render())}[/]", highlight=False)
        print_cells(console, cells,
                    f"{plan.spec.name}: {counted(plan.input_count, 'input')} × {counted(len(cells), 'cell')}")
        total_req = sum(c["requests"] for c in cells)
        console.print(f"{counted(total_req, 'request', ',')}, estimated cost "
                      f"{money_totals(c['estimated_cost'] for c in cells)}. "
                      f"Nothing written; `harness run {args.spec}` writes the payloads.", highlight=False)
    return 0
