"""Damage a real run folder the way a hostile reviewer or a broken disk would, for the tests of
issue 23 (items 5-8) and the fuzz test: a small executed run is written once by the project's own
runner; each case copies it and damages the copy (links, FIFOs, wrong types with the manifest's
hashes and digest recomputed by the project's own code, truncations, ...). The tests run each case
under `tests.helpers.guarded` (a hang guard and a memory guard)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.evidence import canonical_json, hash_tree
from harness.folder import layout
from harness.folder import manifest as manifest_mod
from tests.helpers import Result, cli_env, run_cli

NAME = "damaged"
CELL = "local--e5-small-384"
SPEC = """\
version: 1
name: damaged
models: [local/e5-small]
inputs:
  - {id: cat, text: A cat sitting on a red chair}
  - {id: kitten, text: A kitten resting on a crimson seat}
  - from: rows.csv
    id: "row-{{ row.id }}"
    text: "{{ row.text }}"
checks:
  - nearest: {query: cat, among: [kitten, row-stocks], expect: kitten}
  - similarity: {a: cat, b: kitten, min: 0.5}
"""
ROWS = "id,text\nstocks,The stock market fell sharply today\n"


@dataclass
class Base:
    project: Path          # the spec, its CSV, the run under out/, and each damaged copy beside it
    folder: Path           # the untouched run
    home: Path

    def cli(self, *args: str, cwd: Path | None = None, **env: str) -> Result:
        """`harness ARGS` in this process, from the project (the root of the paths a folder records)."""
        return run_cli(*args, cwd=cwd or self.project, env=cli_env(self.home, HF_HUB_OFFLINE="1", **env))

    def copy(self, name: str) -> Path:
        """A copy of the run at <project>/<name>/damaged: its recorded spec path still leads to the spec."""
        dest = self.project / name / NAME
        shutil.copytree(self.folder, dest, symlinks=True)
        return dest


def build_base(tmp: Path) -> Base:
    """The run every case damages: `harness run --execute` with the embedded local model."""
    project = tmp / "project"
    project.mkdir(parents=True)
    (project / "spec.yaml").write_text(SPEC)
    (project / "rows.csv").write_text(ROWS)
    base = Base(project, project / "out" / NAME, tmp / "home")
    r = base.cli("run", "spec.yaml", "--execute", "--output", "out", "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    return base


# --- the forger's tools: the project's own serialisation and digest --------------------------

def manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / layout.MANIFEST).read_text(encoding="utf-8"))


def write_manifest(folder: Path, data: Any, *, digest: bool = True) -> None:
    """manifest.json with its digest recomputed (`digest`), written as the harness writes it."""
    if digest and isinstance(data, dict):
        data["digest"] = manifest_mod.digest(data)
    (folder / layout.MANIFEST).write_bytes(canonical_json(data, pretty=True))


def edit_manifest(folder: Path, edit: Callable[[dict], None]) -> None:
    data = manifest(folder)
    edit(data)
    write_manifest(folder, data)


def rehash(folder: Path) -> None:
    """After editing files: the manifest's hashes, sizes and digest rewritten to match them."""
    data = manifest(folder)
    data["files"] = hash_tree(folder, exclude=layout.UNHASHED)
    data["sizes"] = {rel: (folder / rel).stat().st_size for rel in data["files"]}
    if layout.INPUTS in data["files"]:
        data["inputs"]["sha256"] = data["files"][layout.INPUTS]
    write_manifest(folder, data)


def rewrite(folder: Path, rel: str, data: bytes | str) -> None:
    """Replace a file's bytes and rehash: only the file's content tells what is wrong."""
    (folder / rel).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    rehash(folder)


def edit_json(folder: Path, rel: str, edit: Callable[[Any], Any]) -> None:
    data = json.loads((folder / rel).read_text(encoding="utf-8"))
    out = edit(data)
    rewrite(folder, rel, canonical_json(data if out is None else out, pretty=True))


def edit_jsonl(folder: Path, rel: str, edit: Callable[[list], Any]) -> None:
    rows = [json.loads(line) for line in (folder / rel).read_text(encoding="utf-8").splitlines() if line]
    edit(rows)
    rewrite(folder, rel, "".join(json.dumps(r) + "\n" for r in rows))


def replace_with_link(folder: Path, rel: str, target: str) -> None:
    path = folder / rel
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()
    os.symlink(target, path)


def replace_with_fifo(folder: Path, rel: str) -> None:
    (folder / rel).unlink()
    os.mkfifo(folder / rel)


