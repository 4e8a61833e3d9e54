"""Where a plan's files go: `FolderTarget` (a run's staging folder), `DigestTarget` (verify: each
file's sha256 only, nothing written), and `Deferred` (a run writing while it scans its inputs, before
its folder exists: temporary files moved in once the plan is whole). Each file is a `Stream` that
knows its sha256 the moment it is closed (nothing is read back to hash it).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Any


class Stream:
    """A file written in pieces whose sha256 is known the moment it is closed. Lines are gathered
    into blocks of `BLOCK` bytes, hashed and written a block at a time (a million lines are a
    million calls fewer)."""

    BLOCK = 1 << 20

    def __init__(self, rel: str, done, f=None):
        self.rel, self.done, self.f = rel, done, f
        self.h = hashlib.sha256()
        self.buf = bytearray()

    def write(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) >= self.BLOCK:
            self._flush()

    def _flush(self) -> None:
        self.h.update(self.buf)
        if self.f is not None:
            self.f.write(self.buf)
        self.buf.clear()

    def close(self) -> str:
        if self.h is None:        # closed already
            return self.digest
        self._flush()
        if self.f is not None and not isinstance(self.f, Kept):
            self.f.close()
        digest = self.digest = self.h.hexdigest()
        self.h = None
        self.done(self.rel, digest)
        return digest


class FolderTarget:
    """Where `harness run` writes a plan: files in the (staging) output folder. `hashes` holds the
    sha256 of every file written, from the very bytes (nothing is read back to hash it). Files inside
    the staging folder need no rename of their own: the folder swap is the commit."""

    BUFFER = 1 << 20

    def __init__(self, folder: Path):
        self.folder = folder
        self.hashes: dict[str, str] = {}

    def mkdir(self, rel: str) -> None:
        (self.folder / rel).mkdir(parents=True)

    def open(self, rel: str) -> Stream:
        return Stream(rel, self.hashes.__setitem__, open(self.folder / rel, "wb", buffering=self.BUFFER))

    def write(self, rel: str, data: bytes, sha: str) -> None:
        with open(self.folder / rel, "xb") as f:
            f.write(data)
        self.hashes[rel] = sha


class DigestTarget:
    """Where `harness verify` re-derives a plan: only each file's sha256 is kept, so the derived
    files are compared with the folder's own hashes and no scratch folder is written."""

    def __init__(self):
        self.hashes: dict[str, str] = {}

    def mkdir(self, rel: str) -> None:
        pass

    def open(self, rel: str) -> Stream:
        return Stream(rel, self.hashes.__setitem__)

    def write(self, rel: str, data: bytes, sha: str) -> None:
        self.hashes[rel] = sha


class Kept:
    """A temporary file a `Stream` writes to and leaves open (`Deferred` moves it on)."""

    def __init__(self, f):
        self.f = f
        self.write = f.write


class Deferred:
    """Where `harness run` writes a plan while scanning its inputs, before its folder exists: each
    file a temporary file (in memory to `memory` bytes, then an unnamed file on disk that a killed
    process leaves nothing of), moved into the folder by `move_into`."""

    def __init__(self, memory: int):
        self.memory = memory
        self.hashes: dict[str, str] = {}
        self.dirs: list[str] = []
        self.files: dict[str, Any] = {}

    def mkdir(self, rel: str) -> None:
        self.dirs.append(rel)

    def open(self, rel: str) -> Stream:
        tmp = tempfile.SpooledTemporaryFile(self.memory) if self.memory else tempfile.TemporaryFile()
        self.files[rel] = tmp
        return Stream(rel, self.hashes.__setitem__, Kept(tmp))

    def write(self, rel: str, data: bytes, sha: str) -> None:     # pragma: no cover - legacy layout: verify only
        raise RuntimeError("a run writes one requests.jsonl per cell")

    def move_into(self, folder: Path) -> dict[str, str]:
        for rel in self.dirs:
            (folder / rel).mkdir(parents=True)
        for rel, tmp in self.files.items():
            tmp.seek(0)
            with open(folder / rel, "xb") as out:
                shutil.copyfileobj(tmp, out, 1 << 20)
            tmp.close()
        self.files = {}
        return self.hashes

    def discard(self) -> None:
        for tmp in self.files.values():
            tmp.close()
        self.files = {}
