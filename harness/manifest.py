"""manifest.json: what was planned and produced, the sha256 of every file, one roll-up digest.

The digest covers everything but `environment` (Python and package versions, git state), so the
same spec and inputs give the same digest on any machine; times and host facts live in run.json.
"""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from harness.evidence import atomic_write, canonical_json, hash_tree, sha256_bytes

MANIFEST = "manifest.json"
RUN = "run.json"
SIGNATURE = "manifest.sig"   # made after the manifest, over its digest (harness.signing)
UNHASHED = frozenset({MANIFEST, RUN, SIGNATURE})
PACKAGES = ("mm-embed-harness", "pyyaml", "jsonschema", "jinja2", "httpx", "rich", "numpy")


def package_versions() -> dict[str, str | None]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


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
    body = {k: v for k, v in manifest.items() if k not in ("environment", "digest")}
    return sha256_bytes(canonical_json(body))


def finish(folder: Path, manifest: dict[str, Any], known: dict[str, str] | None = None) -> dict[str, Any]:
    """Hash every file in `folder`, add the roll-up digest and write manifest.json."""
    manifest = dict(manifest)
    manifest["files"] = hash_tree(folder, exclude=UNHASHED, known=known)
    manifest["digest"] = digest(manifest)
    atomic_write(folder / MANIFEST, canonical_json(manifest, pretty=True))
    return manifest


def read(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))


def rehash(folder: Path) -> dict[str, Any]:
    """After a later step adds files (e.g. `harness export`), bring the file hashes and digest up to date."""
    return finish(Path(folder), read(folder))
