"""A content-addressed cache of successful responses, so nothing is paid for twice.

The key is the sha256 of the canonical JSON of `{"endpoint", "body"}`: the URL a request goes to
and the exact body sent. It never includes the API key or any header, so the same request made
with another key (or by a colleague sharing the folder) hits the same entry, and no key can be
recovered from the cache.

The entries live in one SQLite database, `$HARNESS_CACHE_DIR/responses.sqlite3` (docs/cache.md),
in WAL mode: readers never wait for a writer, and several runs on one host may share the folder
(a write waits up to `BUSY_TIMEOUT` seconds for another process's, then is retried at the next
batch). Answers are written in batches: a commit every `batch` answers or every `seconds` of the
run's clock, and at the end of the run or at an interrupt (`close`), so a run killed with -9 loses
at most the answers of its last, uncommitted batch, and a re-run sends only those again.

WAL needs shared memory between the processes, which a network filesystem (NFS, SMB/CIFS, sshfs)
does not give: on such a folder the database uses a rollback journal instead and says so once.

A cache that cannot be written (a full disk, a read-only folder) costs only re-sending later:
the run warns once and goes on without storing answers. An earlier harness's cache (one file per
entry under `responses/xx/`) is imported into the database once, the first time it is opened.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from harness.evidence import canonical_json, sha256_bytes

CACHE_VERSION = 1
CACHE_ENV = "HARNESS_CACHE_DIR"
DB_NAME = "responses.sqlite3"
OLD_DIR = "responses"              # the one-file-per-entry cache of earlier versions
BATCH = 256                        # answers per commit
BATCH_SECONDS = 5.0                # seconds of the run's clock between commits at most
BUSY_TIMEOUT = 30.0                # seconds a write waits for another process's
NETWORK_FS = ("nfs", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "fuse.sshfs", "sshfs", "9p", "afs",
              "ncpfs", "glusterfs", "fuse.glusterfs", "ceph", "fuse.ceph", "lustre", "gpfs", "davfs", "fuse.s3fs")

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,          -- sha256 of the endpoint and the canonical body
    created INTEGER NOT NULL,      -- unix seconds the answer was stored (prune)
    entry TEXT NOT NULL,           -- JSON: endpoint, shape, dtype, usage, request_id, status, fetched_at
    vectors BLOB NOT NULL          -- the vectors' bytes (float32, as a run keeps them); dtype, shape in entry
);                                 -- a rowid table: rows of kilobytes do not belong in a WITHOUT ROWID b-tree
CREATE INDEX IF NOT EXISTS responses_created ON responses (created);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def default_cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "mm-embed-harness"


def cache_key(endpoint: str, body: dict[str, Any]) -> str:
    """sha256 over canonical JSON of the endpoint and the body; any change to either is a new key."""
    return sha256_bytes(canonical_json({"endpoint": endpoint, "body": body}))


def filesystem_type(path: Path, mounts: str = "/proc/mounts") -> str | None:
    """The type of the filesystem holding `path` (the longest mount point above it), or None
    when `mounts` cannot be read (not Linux)."""
    try:
        lines = Path(mounts).read_text(errors="replace").splitlines()
    except OSError:
        return None
    target = str(path.resolve())
    best, kind = "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind


def _reason(exc: BaseException, root: Path) -> str:
    """An OSError's strerror, or what SQLite says (a full disk named as the OS names it: SQLite
    may report it as an I/O error)."""
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    name = getattr(exc, "sqlite_errorname", "") or ""
    if name == "SQLITE_FULL" or name.startswith("SQLITE_IOERR"):
        try:
            free = os.statvfs(root)
            if name == "SQLITE_FULL" or free.f_bavail * free.f_frsize < (1 << 20):
                return f"No space left on device; SQLite: {exc}"
        except OSError:
            pass
    return str(exc)


def _busy(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc))


class ResponseCache:
    """`get`/`put` by key. `enabled=False` (`--no-cache`) neither reads nor writes;
    `refresh=True` (`--refresh`) never reads but writes what comes back, replacing old entries.

    `put` keeps an answer in memory (`get` sees it at once) until the batch is committed; `close`
    (or `flush`) commits what is left. `now` is the run's clock (seconds), for `seconds`."""

    def __init__(self, root: str | os.PathLike, *, enabled: bool = True, refresh: bool = False,
                 batch: int = BATCH, seconds: float = BATCH_SECONDS, now: Callable[[], float] | None = None,
                 mounts: str = "/proc/mounts", note: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.path = self.root / DB_NAME
        self.enabled = enabled
        self.refresh = refresh
        self.storing = enabled          # False after a write failed: warned once, not retried
        self.batch = max(1, batch)
        self.seconds = seconds
        self.now = now or time.monotonic
        self.mounts = mounts
        self.note = note or (lambda text: print(text, file=sys.stderr))
        self.journal: str | None = None
        self._db: sqlite3.Connection | None = None
        self._opened = False
        self._pending: dict[str, tuple[int, str, bytes]] = {}
        self._since = self.now()
        self._lock = threading.RLock()

    # ---- the database ------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection | None:
        """The open database (created on first use), or None when it cannot be had (warned once)."""
        with self._lock:
            if self._opened:
                return self._db
            self._opened = True
            db = None
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666))   # under the umask; an OS error
                db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                                     check_same_thread=False)
                db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
                kind = filesystem_type(self.root, self.mounts)
                if kind in NETWORK_FS:
                    self.journal = _retry(lambda: db.execute("PRAGMA journal_mode = DELETE").fetchone()[0])
                    self.note(f"note: the response cache {self.path} is on a network filesystem ({kind}), where "
                              "SQLite's WAL mode is unsafe; it uses a rollback journal instead (slower, and runs "
                              f"on several hosts may still clash: point ${CACHE_ENV} at a local disk)")
                else:
                    self.journal = _retry(lambda: db.execute("PRAGMA journal_mode = WAL").fetchone()[0])
                db.execute("PRAGMA synchronous = NORMAL")
                _retry(lambda: db.executescript(SCHEMA))
            except (OSError, sqlite3.Error) as exc:
                if db is not None:
                    db.close()          # no file left open (a full disk must be unmountable)
                self._give_up(exc)
                return None
            self._db = db
            self._import_old(db)
            return db

    def _give_up(self, exc: BaseException) -> None:
        if self.storing:
            self.note(f"warning: cannot write the response cache in {self.root} ({_reason(exc, self.root)}); going on "
                      f"without it, so this run's answers are not cached (free some space, or point ${CACHE_ENV} "
                      "at a writable folder)")
        self.storing = False
        if self._db is not None:
            try:
                self._db.close()
            except sqlite3.Error:  # pragma: no cover
                pass
        self._db = None

    def _import_old(self, db: sqlite3.Connection) -> None:
        """An earlier version's cache (one JSON file per entry under responses/xx/): its entries
        are imported once (a damaged or foreign file is skipped); the files are left where they are."""
        old = self.root / OLD_DIR
        if not old.is_dir():
            return
        try:
            if db.execute("SELECT 1 FROM meta WHERE name = 'imported'").fetchone():
                return
            rows = []
            for path in sorted(old.glob("*/*.json")):
                row = _old_entry(path)
                if row is not None:
                    rows.append(row)

            def write() -> None:
                with _transaction(db):
                    db.executemany("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?)", rows)
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('imported', ?)", (str(len(rows)),))
            _retry(write)
        except (OSError, sqlite3.Error) as exc:
            self._give_up(exc)
            return
        self.note(f"note: imported {len(rows)} entries of the earlier one-file-per-entry cache {old} into "
                  f"{self.path}; that folder is no longer read and can be removed")

    # ---- get, put, flush ---------------------------------------------------------------------

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.enabled or self.refresh:
            return None
        with self._lock:
            row = self._pending.get(key)
            if row is None:
                db = self._connect()
                if db is None:
                    return None
                try:
                    row = db.execute("SELECT created, entry, vectors FROM responses WHERE key = ?",
                                     (key,)).fetchone()
                except sqlite3.Error:
                    return None
        if row is None:
            return None
        try:
            entry = json.loads(row[1])
        except ValueError:
            return None
        if not isinstance(entry, dict) or not isinstance(row[2], bytes):
            return None
        return {"v": CACHE_VERSION, "key": key, **entry, "vectors": base64.b64encode(row[2]).decode("ascii")}

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Keep `entry` (a JSON object: vectors as base64, shape, dtype, usage, request_id, status, ...)
        under `key`; committed with its batch."""
        if not self.storing:
            return
        fields = {k: v for k, v in entry.items() if k not in ("v", "key", "vectors")}
        try:
            blob = base64.b64decode(entry.get("vectors") or "", validate=True)
            if fields.get("dtype") == "<f8":   # kept as the run folder keeps them: float32, half the bytes
                import numpy as np
                blob = np.frombuffer(blob, dtype="<f8").astype("<f4").tobytes()
                fields["dtype"] = "<f4"
        except (TypeError, ValueError):
            return
        text = json.dumps(fields, separators=(",", ":"), allow_nan=False, sort_keys=True)
        with self._lock:
            self._pending[key] = (int(time.time()), text, blob)
            if len(self._pending) >= self.batch or self.now() - self._since >= self.seconds:
                self.flush()

    def flush(self) -> None:
        """Commit the answers kept since the last commit, in one transaction. Another process
        holding the database past the busy timeout: they stay pending, for the next batch."""
        with self._lock:
            self._since = self.now()
            if not self._pending or not self.storing:
                return
            db = self._connect()
            if db is None:
                return
            rows = [(k, created, text, blob) for k, (created, text, blob) in self._pending.items()]
            try:
                with _transaction(db):
                    db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?)", rows)
            except sqlite3.Error as exc:
                if not _busy(exc):
                    self._give_up(exc)
                return
            self._pending.clear()

    def close(self) -> None:
        """Commit what is pending (at the end of a run, or when it is interrupted) and close."""
        with self._lock:
            if self._pending and self.storing:
                self.flush()
                if self._pending and self.storing:     # still busy: one last, patient try
                    time.sleep(0.05)
                    self.flush()
            if self._db is not None:
                self._db.close()
                self._db = None
            self._opened = False

    def __len__(self) -> int:
        db = self._connect() if self.enabled else None
        stored = db.execute("SELECT count(*) FROM responses").fetchone()[0] if db is not None else 0
        return stored + len(self._pending)

    def __bool__(self) -> bool:
        """Whether it holds any answer: one row looked up, not all of them counted (`pending` asks it
        before every execution; a cache of a million answers would be scanned)."""
        if self._pending:
            return True
        db = self._connect() if self.enabled else None
        return db is not None and db.execute("SELECT 1 FROM responses LIMIT 1").fetchone() is not None

    def keys(self) -> set[str]:
        """Every committed key (for tests)."""
        db = self._connect()
        return {k for (k,) in db.execute("SELECT key FROM responses")} if db is not None else set()

    def __enter__(self) -> "ResponseCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextmanager
def _transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken at once (BEGIN IMMEDIATE): committed, or rolled back on any error."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _retry(action: Callable[[], Any], attempts: int = 5) -> Any:
    """`action`, tried again when another process holds the database past the busy timeout."""
    for attempt in range(attempts):
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if not _busy(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _old_entry(path: Path) -> tuple[str, int, str, bytes] | None:
    """A row from one file of the earlier cache, or None when it is damaged or not under its key."""
    try:
        data = json.loads(path.read_bytes())
        key = path.stem
        if not isinstance(data, dict) or data.get("v") != CACHE_VERSION or data.get("key") != key:
            return None
        blob = base64.b64decode(data["vectors"], validate=True)
        created = int(path.stat().st_mtime)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    fields = {k: v for k, v in data.items() if k not in ("v", "key", "vectors")}
    return key, created, json.dumps(fields, separators=(",", ":"), sort_keys=True), blob


# ---- harness cache info | prune --------------------------------------------------------------

def _disk_bytes(root: Path) -> int:
    """The database's bytes on disk, with its WAL, shared-memory and journal files."""
    return sum(p.stat().st_size for p in (root / (DB_NAME + suffix) for suffix in ("", "-wal", "-shm", "-journal"))
               if p.is_file())


def cache_info(root: Path) -> dict[str, Any]:
    """What `harness cache info` says: the database's path, entries, bytes on disk (with its WAL and
    journal files), the oldest and newest entry (unix seconds), and the earlier cache's folder if
    one is left. Reading never creates the database."""
    root = Path(root)
    info: dict[str, Any] = {"path": str(root / DB_NAME), "exists": (root / DB_NAME).is_file(), "entries": 0,
                            "bytes": _disk_bytes(root),
                            "oldest": None, "newest": None,
                            "old_folder": str(root / OLD_DIR) if (root / OLD_DIR).is_dir() else None,
                            "filesystem": filesystem_type(root) if root.exists() else None}
    if info["exists"]:
        # as a URI, percent-encoded: a `#` or `?` in the folder's name would end the path (and open,
        # creating it, a file named by what came before)
        db = sqlite3.connect(f"{(root / DB_NAME).absolute().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT)
        try:
            info["entries"], info["oldest"], info["newest"] = _retry(lambda: db.execute(
                "SELECT count(*), min(created), max(created) FROM responses").fetchone())
        finally:
            db.close()
    return info


def prune(root: Path, older_than_days: float, *, now: float | None = None) -> tuple[int, int, int]:
    """Delete the entries stored more than `older_than_days` ago; the file is compacted when no other
    process holds it. Returns (entries removed, bytes before, bytes after)."""
    root = Path(root)
    before = _disk_bytes(root)
    if not (root / DB_NAME).is_file():
        return 0, before, before
    cutoff = (time.time() if now is None else now) - older_than_days * 86400
    cutoff = int(cutoff) if cutoff > 0 else 0      # older than the epoch (or -inf): nothing is
    db = sqlite3.connect(root / DB_NAME, timeout=BUSY_TIMEOUT, isolation_level=None)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        removed = _retry(lambda: db.execute("DELETE FROM responses WHERE created < ?", (cutoff,)).rowcount)
        if removed:
            try:
                db.execute("VACUUM")
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:   # another run is using it: compacted another time
                pass
    finally:
        db.close()
    after = _disk_bytes(root)
    return removed, before, after
