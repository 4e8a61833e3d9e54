"""Where the DashScope API key comes from, in the order people already keep it.

1. `DASHSCOPE_API_KEY` (what the official SDK and every quickstart use);
2. `dashscope_api_key` in the Alibaba Cloud INI file `~/.alibabacloud/credentials` (path from
   `ALIBABA_CLOUD_CREDENTIALS_FILE`, section from `ALIBABA_CLOUD_PROFILE`, else `default`);
3. `~/.dashscope/api_key`, the file `dashscope.save_api_key` writes.

The key is returned to the caller only; `KeySource` says where it came from without holding it,
so the place can be shown and logged while the key itself never is.
"""

from __future__ import annotations

import configparser
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

ENV_VAR = "DASHSCOPE_API_KEY"
INI_KEY = "dashscope_api_key"


@dataclass(frozen=True)
class KeySource:
    """Where a key was found (never the key)."""

    kind: str    # "env" | "ini" | "file"
    where: str   # "$DASHSCOPE_API_KEY", "/home/u/.alibabacloud/credentials [default]", ...


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def ini_path(env: Mapping[str, str] = os.environ) -> Path:
    override = env.get("ALIBABA_CLOUD_CREDENTIALS_FILE")
    return Path(override).expanduser() if override else _home(env) / ".alibabacloud" / "credentials"


def profile(env: Mapping[str, str] = os.environ) -> str:
    return env.get("ALIBABA_CLOUD_PROFILE") or "default"


def key_file_path(env: Mapping[str, str] = os.environ) -> Path:
    return _home(env) / ".dashscope" / "api_key"


def find_api_key(env: Mapping[str, str] = os.environ) -> tuple[str, KeySource] | None:
    """The first key found in the three places, with its place; None when there is none.

    An unreadable or malformed file is treated as holding no key (the message for a missing
    key names every place, so the user sees where to look).
    """
    value = (env.get(ENV_VAR) or "").strip()
    if value:
        return value, KeySource("env", f"${ENV_VAR}")

    path, section = ini_path(env), profile(env)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        if parser.read(path, encoding="utf-8") and parser.has_section(section):
            value = (parser.get(section, INI_KEY, fallback="") or "").strip()
            if value:
                return value, KeySource("ini", f"{path} [{section}]")
    except (configparser.Error, OSError, UnicodeDecodeError):
        pass

    path = key_file_path(env)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        value = ""
    if value:
        return value, KeySource("file", str(path))
    return None


def _shown(path: Path) -> str:
    """A path under the home folder as ~/..., so the message (which lands in validate.txt and the
    reports) is the same on every machine and names no user."""
    try:
        return "~/" + Path(path).relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)


def missing_key_message(env: Mapping[str, str] = os.environ) -> str:
    """Names all three places, with the exact paths this run looked at."""
    return (f"no DashScope API key: set {ENV_VAR}, or put `{INI_KEY} = sk-...` in section "
            f"[{profile(env)}] of {_shown(ini_path(env))} (ALIBABA_CLOUD_CREDENTIALS_FILE / ALIBABA_CLOUD_PROFILE "
            f"choose the file and section), or write the key to {_shown(key_file_path(env))}")
