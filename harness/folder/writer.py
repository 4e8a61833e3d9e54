"""The one writer of an output folder's evidence, and `finalize`, the last step of anything
that changes a folder (`harness run`, `harness export`)."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any, Iterable


from harness import manifest as manifest_mod
from harness.evidence import atomic_write, canonical_json, hash_tree, sha256_bytes
from harness.folder import layout
from harness.folder.records import MANIFEST_VERSION, CellVectors, Execution, Manifest
from harness.verdict import CheckResult, render_validate_txt


class RunWriter:
    """Write the records of the output folder at `path`, each file atomically."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _write(self, rel: str, data: bytes) -> None:
        atomic_write(self.path / rel, data)

    def execution(self, execution: Execution) -> None:
        self._write(layout.EXECUTION, canonical_json(execution.to_json(), pretty=True))

    def vectors(self, cell_id: str, vectors: CellVectors) -> None:
        buf = io.BytesIO()
        import numpy as np   # here: commands that read no vectors need not load it
        np.save(buf, np.ascontiguousarray(vectors.matrix, dtype=np.float32), allow_pickle=False)
        self._write(layout.vectors_file(cell_id), buf.getbuffer())   # no second copy of the matrix
        self._write(layout.ids_file(cell_id), canonical_json(list(vectors.ids), pretty=True))

    def responses(self, cell_id: str, rows: Iterable[dict[str, Any]]) -> None:
        lines = [json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(",", ":")) for r in rows]
        self._write(layout.responses_file(cell_id), ("\n".join(lines) + "\n").encode("utf-8") if lines else b"")

    def run_facts(self, facts: dict[str, Any]) -> None:
        self._write(layout.RUN, canonical_json(facts, pretty=True))


def finalize(folder: str | Path, manifest: Manifest, results: list[CheckResult],
             known: dict[str, str] | None = None) -> Manifest:
    """Write validate.txt, the reports and manifest.json so that they all tell one story.

    Order matters: every other file is hashed first, the digest is computed over that (it leaves
    the reports out, since they show it), the reports are written carrying the digest, and last
    the manifest, whose file table hashes the reports too. `known` holds hashes of files the
    caller just wrote (payloads), so they are not read back. Returns the manifest written.
    """
    from harness.report.html import render_html
    from harness.report.junit import render_junit
    from harness.report.markdown import render_markdown
    from harness.report.summary import build_summary, render_summary

    folder = Path(folder)
    atomic_write(folder / layout.VALIDATE, render_validate_txt(results))
    files = hash_tree(folder, exclude=layout.UNHASHED | set(layout.REPORTS), known=known)
    final = dataclasses.replace(manifest, manifest_version=MANIFEST_VERSION, files=files, digest=None)
    final.digest = manifest_mod.digest(final.to_json())
    summary_bytes = render_summary(build_summary(folder, final, results))
    summary = json.loads(summary_bytes)  # JUnit and HTML are projections of summary.json's very content
    reports = {layout.SUMMARY: summary_bytes, layout.JUNIT: render_junit(summary),
               layout.REPORT_MD: render_markdown(final, results).encode("utf-8"),
               layout.REPORT_HTML: render_html(summary, folder)}
    for name, data in reports.items():
        atomic_write(folder / name, data)
    final.files = dict(sorted({**files, **{name: sha256_bytes(data) for name, data in reports.items()}}.items()))
    atomic_write(folder / layout.MANIFEST, canonical_json(final.to_json(), pretty=True))
    return final
