"""A run folder read without trusting it: its entries walked and its files opened, read and hashed
as regular files inside it, never through a link, never more than a bound.

A folder to verify may come from anyone. A symbolic link in it may lead anywhere (`/dev/zero`,
`/etc`, itself), a FIFO blocks whoever opens it, a recorded path may climb out with `..`, and a
file may be far larger than any run writes. So every read of a run folder comes here:

- a relative path is taken only as POSIX names inside the folder (no `..`, no absolute path, no
  empty or `.` component), and each folder on the way is opened with O_NOFOLLOW from the one
  before it (`dir_fd`), so no link is followed, not even one a run could have written;
- only a regular file is read (a FIFO is opened non-blocking and refused, as is a device);
- a read stops at its bound: the size the manifest records for the file (evidence format 2), and in
  any case `limit_for` the file: `MAX_RECORD` for a record, `MAX_FILE` for a vectors file.

Every problem is a `FolderError` naming the path; `scan` reports links, other non-files and empty
folders as entries, for `verify` to name as extra.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from harness.folder.records import FolderError

MAX_RECORD = 256 << 20    # a record (JSON, JSONL, text, a payload, a report) is read whole: at most this
MAX_FILE = 8 << 30        # a vectors file (.npy) or a cell's request bodies (requests.jsonl), up to this
MAX_DEPTH = 32            # folders nested deeper than any run writes are not walked
CHUNK = 1 << 20

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def limit_for(rel: str) -> int:
    """The most bytes a run writes into a file at `rel`: `MAX_FILE` for vectors, `MAX_RECORD` for the rest,
    whatever size a manifest records (a forger may record any size; hashing it costs time)."""
    return MAX_FILE if rel.endswith((".npy", "/requests.jsonl")) else MAX_RECORD   # vectors; a cell's bodies


def parts(rel: str) -> list[str]:
    """The names of `rel`, a path inside the folder; FolderError when it could leave the folder."""
    if not isinstance(rel, str) or not rel or "\x00" in rel or rel.startswith("/") or "\\" in rel:
        raise FolderError(f"{rel!r} is not a path inside the folder")
    names = rel.split("/")
    if any(n in ("", ".", "..") for n in names):
        raise FolderError(f"{rel!r} is not a path inside the folder")
    return names


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "folder"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"


@contextlib.contextmanager
def _opened(root: Path, rel: str) -> Iterator[tuple[int, os.stat_result]]:
    """An fd of the regular file `rel` inside `root` and its stat; FolderError otherwise."""
    names = parts(rel)
    fds: list[int] = []
    try:
        try:
            fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
        except OSError as exc:
            raise FolderError(f"cannot open the folder {root}: {exc.strerror or exc}") from None
        for n, name in enumerate(names):
            last = n == len(names) - 1
            try:
                fds.append(os.open(name, _FILE if last else _DIR, dir_fd=fds[-1]))
            except OSError as exc:
                raise FolderError(_why(fds[-1], name, "/".join(names[:n + 1]), exc)) from None
        info = os.fstat(fds[-1])
        if not stat.S_ISREG(info.st_mode):
            raise FolderError(f"{rel} is a {kind_of(info.st_mode)}, not a file: it is not read")
        yield fds[-1], info
    finally:
        for fd in reversed(fds):
            os.close(fd)


def _why(dir_fd: int, name: str, rel: str, exc: OSError) -> str:
    """Why `rel` could not be opened, in the folder's terms (a link is named as one)."""
    try:
        mode = os.lstat(name, dir_fd=dir_fd).st_mode
    except OSError:
        mode = None
    if mode is not None and stat.S_ISLNK(mode):
        return f"{rel} is a symbolic link: verify follows no link, so it is not read"
    if mode is not None and not stat.S_ISDIR(mode) and not stat.S_ISREG(mode):
        return f"{rel} is a {kind_of(mode)}, not a file: it is not read"
    return f"cannot read {rel}: {exc.strerror or exc}"


def _bound(rel: str, size: int, limit: int, recorded: int | None, exact: bool = True) -> None:
    if recorded is not None and (size != recorded if exact else size > recorded):
        raise FolderError(f"{rel} is {size} bytes, {'more than ' if size > recorded else ''}the {recorded} "
                          "the manifest records")
    if size > limit:
        raise FolderError(f"{rel} is {size} bytes, more than the {limit} a run writes: it is not read")


def read_file(root: Path, rel: str, limit: int = MAX_RECORD, recorded: int | None = None,
              exact: bool = True) -> bytearray:
    """The bytes of the regular file `rel` inside `root`: at most `limit`, and exactly `recorded`
    when the manifest records a size (`exact=False`: at most that). A bytearray, so an array made
    over it is writable."""
    with _opened(root, rel) as (fd, info):
        _bound(rel, info.st_size, limit, recorded, exact)
        want = info.st_size
        buf = bytearray(want + 1)                # one byte past the size: a file that grew is said
        view = memoryview(buf)
        got = 0
        try:
            while got < len(buf) and (n := os.readv(fd, [view[got:got + CHUNK]])):
                got += n
        finally:
            view.release()
    if got != want:
        raise FolderError(f"{rel} changed while it was read")
    del buf[got:]
    return buf


def hash_file(root: Path, rel: str, limit: int = MAX_FILE, recorded: int | None = None) -> str:
    """The sha256 of the regular file `rel` inside `root`, read as a stream, bounded as `read_file`."""
    h = hashlib.sha256()
    with _opened(root, rel) as (fd, info):
        _bound(rel, info.st_size, limit, recorded)
        left = info.st_size + 1
        while left > 0 and (block := os.read(fd, min(CHUNK, left))):
            h.update(block)
            left -= len(block)
    if left <= 0:
        raise FolderError(f"{rel} changed while it was read")
    return h.hexdigest()


def read_path(path: str | os.PathLike, limit: int = MAX_RECORD) -> bytearray:
    """The bytes of the regular file at `path` (a path already confined by its caller), at most `limit`:
    a FIFO or a device is refused without blocking."""
    path = Path(path)
    return read_file(path.parent, path.name, limit)


def hash_path(path: str | os.PathLike, limit: int = MAX_FILE) -> str:
    """The sha256 of the regular file at `path` (confined by its caller), bounded as `read_path`."""
    path = Path(path)
    return hash_file(path.parent, path.name, limit)


def map_file(root: Path, rel: str, limit: int = MAX_FILE, recorded: int | None = None, exact: bool = True):
    """The regular file `rel` inside `root` mapped read-only (bounded as `read_file`)."""
    import mmap

    with _opened(root, rel) as (fd, info):
        _bound(rel, info.st_size, limit, recorded, exact)
        return mmap.mmap(fd, info.st_size, access=mmap.ACCESS_READ) if info.st_size else b""


def entry_kind(root: Path, rel: str) -> str | None:
    """What is at `rel` inside `root` (`kind_of`'s words), links not followed; None when nothing
    is, or when a folder on the way is a link or not a folder."""
    try:
        names = parts(rel)
    except FolderError:
        return None
    path = Path(root)
    for n, name in enumerate(names):
        path = path / name
        try:
            mode = os.lstat(path).st_mode
        except OSError:
            return None
        if n < len(names) - 1 and not stat.S_ISDIR(mode):
            return None
    return kind_of(mode)


@dataclass
class Entry:
    """Something in the folder that is not a regular file (or a folder holding something)."""

    path: str
    kind: str                 # kind_of's word, or "empty folder", "too deep"
    target: str | None = None  # a link's target, as written (never followed)

    def describe(self) -> str:
        if self.kind == "symbolic link":
            return f"a symbolic link (to {self.target!r}), not a file: verify follows no link"
        if self.kind == "empty folder":
            return "an empty folder, which no run writes"
        if self.kind == "too deep":
            return f"folders nested deeper than {MAX_DEPTH} levels, which no run writes: not walked"
        return f"a {self.kind}, not a file: it is not read"


@dataclass
class Scan:
    files: dict[str, int] = field(default_factory=dict)   # regular file → size in bytes
    odd: list[Entry] = field(default_factory=list)         # links, FIFOs, devices, empty folders


def scan(root: str | os.PathLike, exclude: frozenset[str] = frozenset()) -> Scan:
    """Every entry under `root`, no link followed: regular files with their sizes, and the rest as
    `Entry`s. `exclude` names top-level files left out (they are reported only when not files)."""
    out = Scan()
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _walk(root_fd, "", 0, out, exclude)
    finally:
        os.close(root_fd)
    out.files = dict(sorted(out.files.items()))
    out.odd.sort(key=lambda e: e.path)
    return out


def _walk(fd: int, prefix: str, depth: int, out: Scan, exclude: frozenset[str]) -> int:
    """Walk the open folder `fd`; returns how many entries it holds."""
    with os.scandir(fd) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        rel = prefix + e.name
        try:
            mode = e.stat(follow_symlinks=False).st_mode
        except OSError:
            continue                                   # gone while walking
        if stat.S_ISREG(mode):
            if rel not in exclude:
                out.files[rel] = e.stat(follow_symlinks=False).st_size
        elif stat.S_ISDIR(mode):
            if depth + 1 >= MAX_DEPTH:
                out.odd.append(Entry(rel + "/", "too deep"))
                continue
            try:
                sub = os.open(e.name, _DIR, dir_fd=fd)
            except OSError:
                out.odd.append(Entry(rel + "/", "folder"))
                continue
            try:
                if _walk(sub, rel + "/", depth + 1, out, exclude) == 0:
                    out.odd.append(Entry(rel + "/", "empty folder"))
            finally:
                os.close(sub)
        else:
            target = None
            if stat.S_ISLNK(mode):
                try:
                    target = os.readlink(e.name, dir_fd=fd)
                except OSError:
                    target = "?"
            out.odd.append(Entry(rel, kind_of(mode), target))
    return len(entries)
