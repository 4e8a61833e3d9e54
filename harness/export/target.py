"""Where `--to` points: a file path means embedded Milvus Lite, ``http(s)://host:port`` a Milvus server.

The same pymilvus code serves both; only the URI changes. A Lite database may not live inside the
output folder (every file there is hashed into manifest.json), and a server URI's credentials
never reach a file, a log or a message.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from harness.errors import Problem, UsageError


@dataclass(frozen=True)
class Target:
    uri: str            # what pymilvus gets
    shown: str          # what files, logs and messages get (credentials removed)
    kind: str           # "milvus-lite" | "milvus-server"


_SERVER_SCHEMES = ("http", "https", "tcp", "grpc", "unix")
_STAGED = re.compile(r"^\.(.+)\.staging-")  # evidence.StagedFolder's naming


def _redact_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=f"***@{host}")
    return urlunsplit(parts)


def resolve_target(to: str, folder: Path | None = None) -> Target:
    """A file path means Milvus Lite (it must end in .db); http(s)://host:port a Milvus server."""
    if not to or not to.strip():
        raise UsageError(Problem("--to is empty", hint="give a Milvus Lite file (vectors.db) or http://host:19530"))
    scheme = to.split("://", 1)[0].lower() if "://" in to else ""
    if scheme:
        if scheme not in _SERVER_SCHEMES:
            raise UsageError(Problem(f"unknown Milvus URI scheme {scheme!r} in --to",
                                       hint="use a file path ending in .db for Milvus Lite, or http(s)://host:19530"))
        return Target(uri=to, shown=_redact_uri(to), kind="milvus-server")
    path = Path(to).expanduser()
    if path.suffix != ".db":
        raise UsageError(Problem(f"Milvus Lite database path {to!r} must end in .db",
                                   hint="e.g. --to vectors.db; for a server use http://host:19530"))
    if path.exists() and path.is_file():
        raise UsageError(Problem(f"{to} is a file, not a Milvus Lite database (those are folders)",
                                   hint="choose another path ending in .db"))
    resolved = path.resolve()
    if folder is not None:
        roots = [Path(folder).resolve()]
        staged = _STAGED.match(roots[0].name)
        if staged:
            roots.append(roots[0].parent / staged.group(1))  # it replaces this folder on commit
        if any(resolved == root or root in resolved.parents for root in roots):
            raise UsageError(Problem(f"{to} is inside the output folder {folder}",
                                       hint="put the database outside it; every file in the output folder is "
                                            "hashed into manifest.json and a live database would break "
                                            "`harness verify`"))
    return Target(uri=str(resolved), shown=to, kind="milvus-lite")


def token_from_env(var: str) -> str:
    """The token named by a spec's `token_env` / `--token-env`; the value is never shown."""
    value = os.environ.get(var)
    if not value:
        raise UsageError(Problem(f"environment variable {var} is not set (it should hold the Milvus token)",
                                   hint=f"export {var}=user:password (or an API key), or drop --token-env for "
                                        "a server without authentication"))
    return value
