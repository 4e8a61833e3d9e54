"""harness cache info | prune --older-than DAYS: the response cache's place and size, and bounding it."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

from harness.commands.flags import number
from harness.errors import ExitCode, Problem, UsageError
from harness.words import counted

NAME = "cache"
HELP = "the response cache: where it is and how big (info), and removing old answers (prune)"
ORDER = 72


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=HELP + ". The cache is one SQLite file in $HARNESS_CACHE_DIR "
                       "(default ~/.cache/mm-embed-harness); see docs/cache.md.",
                       epilog="exit codes: 0 ok · 2 bad command line, or the cache cannot be read")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    actions.add_parser("info", help="path, entries, bytes on disk, oldest and newest entry",
                       description="Say where the response cache is, how many answers it holds, its size on "
                                   "disk (with its WAL) and when its oldest and newest answers were stored.")
    prune = actions.add_parser("prune", help="remove answers stored more than DAYS ago",
                               description="Remove the answers stored more than DAYS ago and compact the file "
                                           "(a run sends those requests again when it needs them).")
    prune.add_argument("--older-than", required=True, metavar="DAYS", type=number(float, minimum=0),
                       help="remove the answers stored more than DAYS days ago (0: every answer)")
    return p


def _when(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"   # pragma: no cover


def run(args) -> int:
    from harness.execute.cache import cache_info, default_cache_dir, prune

    root = default_cache_dir()
    try:
        if args.action == "prune":
            removed, before, after = prune(root, args.older_than)
            print(f"removed {counted(removed, 'answer')} stored more than {args.older_than:g} days ago from {root}; "
                  f"{_size(before)} → {_size(after)}")
            return int(ExitCode.OK)
        info = cache_info(root)
    except (OSError, sqlite3.Error) as exc:
        raise UsageError(Problem(f"cannot read the response cache in {root}: {exc}",
                                 hint="check $HARNESS_CACHE_DIR; a damaged cache can be deleted (answers are "
                                      "fetched again)")) from None
    print(f"path:     {info['path']}{'' if info['exists'] else ' (not created yet)'}")
    print(f"entries:  {info['entries']}")
    print(f"bytes:    {info['bytes']} ({_size(info['bytes'])})")
    print(f"oldest:   {_when(info['oldest'])}")
    print(f"newest:   {_when(info['newest'])}")
    if info["filesystem"]:
        print(f"filesystem: {info['filesystem']}")
    if info["old_folder"]:
        print(f"note: {info['old_folder']} is an earlier version's one-file-per-entry cache; a run imports "
              "its entries into the database once, after which the folder can be removed")
    return int(ExitCode.OK)
