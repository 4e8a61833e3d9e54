"""A content-addressed cache of successful responses, so nothing is paid for twice.

The key is the sha256 of the canonical JSON of `{"endpoint", "body"}`: the URL a request goes to
and the exact body sent. It never includes the API key or any header, so the same request made
with another key (or by a colleague sharing the folder) hits the same entry, and no key can be
recovered from a cache file.

Entries are written as each response arrives: temp file + rename, so a reader (or a run killed
with -9) sees a whole entry or none. There is no fsync per entry (it would cap throughput at the
disk's sync rate); a kill does not lose page-cache data, and an entry torn by a power loss fails
to parse or to match its key and is simply a miss that is sent again.

A cache that cannot be written (a full disk, a read-only folder) costs only re-sending later:
the run warns once and goes on without storing answers.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from harness.evidence import atomic_write, canonical_json, sha256_bytes

CACHE_VERSION = 1
CACHE_ENV = "HARNESS_CACHE_DIR"


def default_cache_dir() -> Path:
    override = os.environ.get(CACHE_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "mm-embed-harness"


def cache_key(endpoint: str, body: dict[str, Any]) -> str:
    """sha256 over canonical JSON of the endpoint and the body; any change to either is a new key."""
    return sha256_bytes(canonical_json({"endpoint": endpoint, "body": body}))


class ResponseCache:
    """`get`/`put` by key. `enabled=False` (`--no-cache`) neither reads nor writes;
    `refresh=True` (`--refresh`) never reads but writes what comes back, replacing old entries."""

    def __init__(self, root: str | os.PathLike, *, enabled: bool = True, refresh: bool = False):
        self.root = Path(root)
        self.enabled = enabled
        self.refresh = refresh
        self.storing = enabled          # False after a write failed: warned once, not retried

    def path(self, key: str) -> Path:
        return self.root / "responses" / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        if not self.enabled or self.refresh:
            return None
        try:
            data = json.loads(self.path(key).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(data, dict) or data.get("v") != CACHE_VERSION or data.get("key") != key:
            return None
        return data

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Store `entry` (a JSON object: vectors, usage, request_id, status, ...) under `key`, atomically.

        The entry carries its key, so a file copied or renamed under another key is a miss."""
        if not self.storing:
            return
        record = {"v": CACHE_VERSION, "key": key, **entry}
        data = json.dumps(record, separators=(",", ":"), allow_nan=False).encode("utf-8")
        try:
            atomic_write(self.path(key), data, fsync=False)
        except OSError as e:
            self.storing = False
            print(f"warning: cannot write the response cache in {self.root} ({e.strerror or e}); going on "
                  f"without it, so this run's answers are not cached (free some space, or point ${CACHE_ENV} "
                  "at a writable folder)", file=sys.stderr)

    def __len__(self) -> int:
        base = self.root / "responses"
        return sum(1 for _ in base.glob("*/*.json")) if base.exists() else 0
