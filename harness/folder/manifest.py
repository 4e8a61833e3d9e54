"""manifest.json's facts: the environment it captures and its roll-up digest.

The digest covers everything but `environment` (Python and package versions, git state), so the
same spec and inputs give the same digest on any machine; times and host facts live in run.json.
The manifest is written by `harness.report.finalize`, its record is `harness.folder.Manifest`.
"""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.evidence import canonical_json, sha256_bytes
from harness.folder.layout import REPORTS

PACKAGES = ("mm-embed-harness", "pyyaml", "jsonschema", "jinja2", "httpx", "rich", "numpy")


@functools.lru_cache(maxsize=1)    # once per process: each version is a metadata file parsed as an email
def _package_versions() -> tuple[tuple[str, str | None], ...]:
    out = []
    for name in PACKAGES:
        try:
            out.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            out.append((name, None))
    return tuple(out)


def package_versions() -> dict[str, str | None]:
    return dict(_package_versions())


def git_state(folder: Path) -> dict[str, Any] | None:
    """Commit and dirty flag of the repository holding `folder`, or None outside a repository."""
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                                text=True, timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10)
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return None


def environment(spec_dir: Path | None) -> dict[str, Any]:
    return {"python": platform.python_version(), "packages": package_versions(),
            "git": git_state(spec_dir) if spec_dir else None}


def digest(manifest: dict[str, Any]) -> str:
    """The roll-up digest: sha256 of the canonical manifest without `environment` and `digest`.

    From manifest_version 2 the file table inside it leaves out the reports (summary.json,
    junit.xml, report.md, report.html): they show this digest, so it cannot depend on their
    bytes. They are still hashed in `files` (and sized in `sizes`), and `verify` checks they agree
    with the digest.
    Version 1 manifests (older runs) covered every file.
    """
    body = {k: v for k, v in manifest.items() if k not in ("environment", "digest")}
    version = manifest.get("manifest_version")
    if isinstance(version, int) and version >= 2:
        for table in ("files", "sizes"):     # format 2's sizes: the reports' are left out alike
            if isinstance(body.get(table), dict):
                body[table] = {p: h for p, h in body[table].items() if p not in REPORTS}
    return sha256_bytes(canonical_json(body))
