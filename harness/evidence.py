"""Canonical JSON, hashing and atomic writes: every byte the harness hashes goes through here."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable, Iterator


def canonical_json(obj: Any, *, pretty: bool = False) -> bytes:
    """The one serialisation that is hashed: sorted keys, UTF-8, no NaN/Infinity.

    Compact for payloads; `pretty` (2-space indent, trailing newline) for files people read.
    Both are deterministic for the same object.
    """
    if pretty:
        text = json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False, indent=2) + "\n"
        return text.encode("utf-8")
    if _orjson is not None and _plain(obj):
        try:
            return _orjson.dumps(obj, option=_orjson.OPT_SORT_KEYS)
        except (TypeError, ValueError):     # nesting past orjson's limit: json says what it says
            pass
    return _COMPACT.encode(obj).encode("utf-8")


try:   # the same bytes as _COMPACT, ten times faster, for the values `_plain` admits (tests/test_canonical.py)
    import orjson as _orjson
except ImportError:  # pragma: no cover - a dependency; without it every value takes json's path
    _orjson = None
_COMPACT = json.JSONEncoder(sort_keys=True, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
_INT_RANGE = range(-(1 << 63), 1 << 64)     # orjson's integers; json's are unbounded


def _plain(obj: Any) -> bool:
    """True when orjson writes `obj` byte for byte as json does: dicts with str keys, lists, tuples, str,
    bool, None and 64-bit ints, exact types only. Floats are not (json writes 1e-05, orjson 0.00001),
    nor subclasses (an IntEnum), nor ints past 64 bits; a lone surrogate orjson refuses, then json."""
    t = type(obj)
    if t is str or t is bool or obj is None:
        return True
    if t is dict:
        for k, v in obj.items():
            if type(k) is not str or not (type(v) is str or _plain(v)):
                return False
        return True
    if t is list or t is tuple:
        for v in obj:
            tv = type(v)
            if tv is str:
                continue
            if tv is dict:      # a list of small dicts (a body's contents), inline: a call fewer per item
                for k, x in v.items():
                    if type(k) is not str or not (type(x) is str or _plain(x)):
                        return False
            elif not _plain(v):
                return False
        return True
    return t is int and obj in _INT_RANGE


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


_UMASK: int | None = None


def umask() -> int:
    """This process's umask: files the harness writes get the modes any file the user writes gets."""
    global _UMASK
    if _UMASK is None:
        try:  # Linux says it without changing it (os.umask would, for a moment, for every thread)
            with open("/proc/self/status", encoding="ascii") as f:
                _UMASK = next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
        except (OSError, StopIteration, ValueError):
            _UMASK = os.umask(0o022)
            os.umask(_UMASK)
    return _UMASK


class HashingFile:
    """A file open for writing that hashes (sha256) every byte written to it, when asked to."""

    def __init__(self, f, hashed: bool = True):
        self.f = f
        self.h = hashlib.sha256() if hashed else None

    def write(self, data) -> None:
        if self.h is not None:
            self.h.update(data)
        self.f.write(data)

    @property
    def sha256(self) -> str:
        return self.h.hexdigest()


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, *, fsync: bool = True, hashed: bool = True) -> Iterator[HashingFile]:
    """Write to a temp file in the same folder, fsync, then rename: a reader (or a crash) never
    sees a half file under the final name. The file is written in pieces to the `HashingFile`
    this yields (so it need not be in memory whole); it appears under its name only when the
    block ends without an error, and `.sha256` then holds the digest of what was written."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except FileNotFoundError:   # the folder first, only when missing: a mkdir costs as much as the write
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 would hide evidence from everyone else
            yield HashingFile(f, hashed)
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


def atomic_write(path: str | os.PathLike, data: bytes, *, fsync: bool = True) -> None:
    """`atomic_writer` for bytes in hand. `fsync=False` keeps its guarantee against a killed
    process (the rename is atomic) but not against a power cut; the response cache uses it,
    because a lost entry is only re-fetched."""
    with atomic_writer(path, fsync=fsync, hashed=False) as f:
        f.write(data)


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


# --- who owns a temporary name ------------------------------------------------------------
# Staging folders, a swap's previous folder and input spools carry their process's id, start
# time and host, so a later run can tell the debris of a killed process (removed) from the work of
# a live one (kept), even once the PID is reused; another host's (a shared disk) is never judged.

OWNER = r"(?P<owner>\d+-\d+-[0-9a-f]{8})"


def _host() -> str:
    return hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:8]


def _start_time(pid: int) -> str | None:
    """Start time of a live process in clock ticks since boot (/proc/PID/stat field 22), or None
    when it is gone (a zombie is gone too: it only waits to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in (b"Z", b"X") else fields[19].decode()


def owner() -> str:
    """`PID-STARTTIME-HOST` of this process (STARTTIME 0 where there is no /proc)."""
    pid = os.getpid()
    return f"{pid}-{_start_time(pid) or 0}-{_host()}"


def owner_alive(tag: str) -> bool:
    pid, start, host = tag.split("-")
    if host != _host():
        return True
    if os.path.isdir("/proc/self"):
        return _start_time(int(pid)) == start
    try:  # no /proc: the PID alone, erring on the side of keeping
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def dead_owners(folder: Path, pattern: re.Pattern) -> Iterator[tuple[Path, re.Match]]:
    """Entries of `folder` named by `pattern` (with an `owner` group) whose process is gone."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        m = pattern.match(entry.name)
        if m and not owner_alive(m["owner"]):
            yield Path(entry.path), m


STAGING = re.compile(r"^\.(?P<name>.+)\.staging-" + OWNER + r"-\w+$")
PREVIOUS = re.compile(r"^\.(?P<name>.+)\.old-" + OWNER + r"$")


def sweep(base: Path) -> None:
    """Clear what killed runs left in an output base: their staging folders go; a previous run a
    swap had moved aside goes back to its name if nothing took that name, else it goes too."""
    for path, _ in dead_owners(base, STAGING):
        shutil.rmtree(path, ignore_errors=True)
    for path, m in dead_owners(base, PREVIOUS):
        try:
            if os.path.lexists(base / m["name"]):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.rename(path, base / m["name"])
        except OSError:
            pass  # another run got there first


# Folders this process committed, with whether each replaced an earlier one: an interrupt after
# a commit must not claim that nothing was changed.
COMMITTED: list[tuple[Path, bool]] = []

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the
    system or the file system cannot."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None) if sys.platform == "linux" else None
    if fn is None:
        return False
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done, then act as they would have."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.signal(s, lambda signum, frame: caught.append(signum)) for s in held}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if caught:
            handler = previous[caught[0]]
            if callable(handler):
                handler(caught[0], None)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(caught[0])


class StagedFolder:
    """Build an output folder beside its final place and swap it in only when complete.

    An interrupted or failed run leaves the previous folder untouched and no half-written
    one under the final name (the staging folder starts with a dot and is removed on failure).
    `guard(final)` may refuse what sits at the final place: it runs before the staging folder
    exists and again at the swap. The swap is one rename, or one exchange of two folders; where
    the system cannot exchange, two renames with SIGINT/SIGTERM held in between, and a later
    run restores a previous folder that a killed process left moved aside.
    """

    def __init__(self, final: str | os.PathLike, guard: Callable[[Path], None] | None = None):
        self.final = Path(final)
        self.guard = guard or (lambda _: None)
        self.guard(self.final)
        self.final.parent.mkdir(parents=True, exist_ok=True)
        sweep(self.final.parent)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.final.name}.staging-{owner()}-", dir=self.final.parent))
        os.chmod(self.path, 0o777 & ~umask())   # mkdtemp's 0700 would hide the run from everyone else

    def commit(self) -> Path:
        trash = None
        try:
            with signals_held():
                self.guard(self.final)
                if not os.path.lexists(self.final):
                    os.rename(self.path, self.final)
                elif _exchange(self.path, self.final):
                    trash = self.path                  # the previous run, now under the staging name
                else:
                    aside = self.final.with_name(f".{self.final.name}.old-{owner()}")
                    os.rename(self.final, aside)
                    try:
                        os.rename(self.path, self.final)
                    except BaseException:
                        os.rename(aside, self.final)   # the new run could not land: the previous one goes back
                        raise
                    trash = aside
                COMMITTED.append((self.final, trash is not None))
        finally:
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
        return self.final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def __enter__(self) -> "StagedFolder":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()
