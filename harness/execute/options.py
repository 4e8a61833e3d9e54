"""How to execute a run: concurrency, quotas, retries, the cache, the clock.

`harness run --execute` and `harness verify --reexecute` build their options the same way
(`ExecuteOptions.from_run`): the spec's `execution:` under what the command line gave.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.execute.cache import default_cache_dir

SPEC_SETS = ("concurrency", "rpm", "tpm", "timeout", "max_attempts")   # spec.schema.json's `execution`


@dataclass
class ExecuteOptions:
    """How to execute. Quotas: None → the catalog's for the model, 0 → no limit."""

    concurrency: int = 8
    rpm: int | None = None
    tpm: int | None = None
    timeout: float = 60.0
    max_attempts: int = 5
    cache_dir: Path = field(default_factory=default_cache_dir)
    use_cache: bool = True
    refresh: bool = False
    quiet: bool = False
    workspace: str | None = None
    backoff_base: float = 0.5        # first retry waits about this long, doubling each time
    backoff_max: float = 30.0
    quota_window: float = 60.0       # seconds the rpm/tpm quota is counted over (tests scale it down)
    quota_headroom: float = 0.98     # share of the quota the limiter aims at
    replica_down_for: float = 10.0   # seconds a replica that failed gets no requests (tests scale it down)
    http_client: Any = field(default=None, repr=False, compare=False)  # set by execute_run
    local_files: dict = field(default_factory=dict, repr=False)   # sha256 → path, for `upload_local_files`
    allow_hosts: tuple = ()          # `--allow-host` values: storage hosts an upload may go to (never from a spec)
    clock: Any = field(default=None, repr=False, compare=False)   # None: real time; tests: limiter.VirtualClock

    @classmethod
    def from_run(cls, spec_execution: dict | None, given: dict | None = None, *,
                 local_files: dict | None = None, allow_hosts: tuple | list = ()) -> "ExecuteOptions":
        """The spec's `execution:` under `given` (what the command line or the caller says; None there
        means not given); keys that name no option are left out. `local_files` and `allow_hosts` never
        come from a spec."""
        names = {f.name for f in fields(cls)}
        # a spec sets only these (its schema allows no more; checked here too, since a cache folder,
        # a client or a clock chosen by a stranger's spec would be a door)
        spec = {k: v for k, v in (spec_execution or {}).items() if k in SPEC_SETS}
        chosen = {**spec, **{k: v for k, v in (given or {}).items() if v is not None}}
        values = {k: v for k, v in chosen.items() if k in names}
        return cls(**{**values, "local_files": dict(local_files or {}), "allow_hosts": tuple(allow_hosts)})
