"""Canonical JSON, hashing and atomic writes: every byte the harness hashes goes through here."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any


def canonical_json(obj: Any, *, pretty: bool = False) -> bytes:
    """The one serialisation that is hashed: sorted keys, UTF-8, no NaN/Infinity.

    Compact for payloads; `pretty` (2-space indent, trailing newline) for files people read.
    Both are deterministic for the same object.
    """
    if pretty:
        text = json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False, indent=2) + "\n"
    else:
        text = json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write to a temp file in the same folder, fsync, then rename: a reader (or a crash)
    never sees a half file under the final name. `fsync=False` keeps that guarantee against a
    killed process (the rename is atomic) but not against a power cut; the response cache uses
    it, because a lost entry is only re-fetched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def hash_tree(root: str | os.PathLike, exclude: frozenset[str] = frozenset(),
              known: dict[str, str] | None = None) -> dict[str, str]:
    """sha256 of every file under `root`, keyed by POSIX relative path, sorted. `known` holds
    digests computed from the very bytes the caller just wrote, so they are not read back."""
    root = Path(root)
    known = known or {}
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if rel not in exclude:
                out[rel] = known.get(rel) or sha256_file(os.path.join(dirpath, name))
    return dict(sorted(out.items()))


class StagedFolder:
    """Build an output folder beside its final place and swap it in only when complete.

    An interrupted or failed run leaves the previous folder untouched and no half-written
    one under the final name (the staging folder starts with a dot and is removed on failure).
    """

    def __init__(self, final: str | os.PathLike):
        self.final = Path(final)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.staging-", dir=self.final.parent))

    def commit(self) -> Path:
        old = None
        if self.final.exists():
            old = self.final.with_name(f".{self.final.name}.old-{os.getpid()}")
            os.replace(self.final, old)
        os.replace(self.path, self.final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "StagedFolder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()
