"""The last step of anything that changes an output folder (`harness run`, `harness export`), and
the one place the reports are rendered: `finalize` writes what `render_reports` renders, `verify`
compares the files with it."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

from harness.evidence import atomic_write, canonical_json, hash_tree, sha256_bytes
from harness.folder import layout
from harness.folder import manifest as manifest_mod
from harness.folder.records import EVIDENCE_FORMAT, MANIFEST_VERSION, Manifest
from harness.folder.summary import Summary
from harness.folder.verdict import CheckResult, render_validate_txt
from harness.report.html import render_html
from harness.report.junit import junit_timestamp, recorded_timestamp, render_junit
from harness.report.markdown import render_markdown
from harness.report.summary import build_summary, render_summary


def render_reports(folder: Path, manifest: Manifest, results: list[CheckResult], *, timestamp: str | None,
                   summary: dict | None = None) -> dict[str, bytes]:
    """summary.json, junit.xml, report.md and report.html (by file name, in `layout.REPORTS` order)
    as bytes; nothing is written. summary.json comes from the folder, `manifest` (carrying its
    digest) and `results`; the other three are projections of `summary`, a summary.json's content:
    by default the one rendered here, for `verify` the one the folder holds, so each report is
    checked against the file it projects. `timestamp` is JUnit's (the run's start)."""
    summary_bytes = render_summary(build_summary(folder, manifest, results))
    # the others project summary.json's very content (JSON's types, sorted keys), as a record
    shown = Summary.from_json(json.loads(summary_bytes) if summary is None else summary)
    return {layout.SUMMARY: summary_bytes, layout.JUNIT: render_junit(shown, timestamp),
            layout.REPORT_MD: render_markdown(manifest, results, summary=shown).encode("utf-8"),
            layout.REPORT_HTML: render_html(shown, folder)}


def finalize(folder: str | Path, manifest: Manifest, results: list[CheckResult],
             known: dict[str, str] | None = None, started: float | None = None) -> Manifest:
    """Write validate.txt, the reports and manifest.json so that they all tell one story.

    Order matters: every other file is hashed first, the digest is computed over that (it leaves
    the reports out, since they show it), the reports are written carrying the digest, and last
    the manifest, whose file table hashes the reports too. `known` holds hashes of files the
    caller just wrote (payloads), so they are not read back. `started` (a Unix time) is the run's
    start, JUnit's `timestamp`; without it (`harness export` finalising again) junit.xml keeps the
    timestamp it has. Returns the manifest written.
    """
    folder = Path(folder)
    atomic_write(folder / layout.VALIDATE, render_validate_txt(results))
    files = hash_tree(folder, exclude=layout.UNHASHED | set(layout.REPORTS), known=known)
    sizes = {rel: os.stat(folder / rel).st_size for rel in files}   # format 2: a reader reads no more
    final = dataclasses.replace(manifest, manifest_version=MANIFEST_VERSION, evidence_format=EVIDENCE_FORMAT,
                                files=files, sizes=sizes, digest=None)
    final.digest = manifest_mod.digest(final.to_json())
    timestamp = junit_timestamp(started) if started is not None else recorded_timestamp(folder / layout.JUNIT)
    reports = render_reports(folder, final, results, timestamp=timestamp)
    for name, data in reports.items():
        atomic_write(folder / name, data)
    final.files = dict(sorted({**files, **{name: sha256_bytes(data) for name, data in reports.items()}}.items()))
    final.sizes = dict(sorted({**sizes, **{name: len(data) for name, data in reports.items()}}.items()))
    atomic_write(folder / layout.MANIFEST, canonical_json(final.to_json(), pretty=True))
    return final
