"""report.md: the cells and checks of a run, for people (rendered from a Jinja2 template)."""

from __future__ import annotations

import jinja2

from harness.estimate import money
from harness.verdict import CheckResult, counts, verdict

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("harness", "report/templates"),
                          autoescape=False, trim_blocks=False, keep_trailing_newline=True,
                          undefined=jinja2.StrictUndefined)


def mix(counts: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "—"


def render_markdown(manifest, results: list[CheckResult], description: str | None = None) -> str:
    return _ENV.get_template("report.md.j2").render(m=manifest, results=results, passed=verdict(results),
                                                    counts=counts(results), mix=mix, money=money,
                                                    description=description)
