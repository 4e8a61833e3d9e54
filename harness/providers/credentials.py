"""Where the DashScope API key comes from, in the order people already keep it.

1. `DASHSCOPE_API_KEY` (what the official SDK and every quickstart use);
2. the file `DASHSCOPE_API_KEY_FILE_PATH` names (the official SDK's next place; set but unreadable
   is an error, as in the SDK, never a silent fall-through to another key);
3. `dashscope_api_key` in the Alibaba Cloud INI file `~/.alibabacloud/credentials` (path from
   `ALIBABA_CLOUD_CREDENTIALS_FILE`; section from `ALIBABA_CLOUD_PROFILE`, else `ALICLOUD_PROFILE`
   as the Alibaba Cloud CLI tools read it, else `default`);
4. `~/.dashscope/api_key`, the file `dashscope.save_api_key` writes.

The workspace id: `--workspace`, else `DASHSCOPE_WORKSPACE` (SDK v2), else `DASHSCOPE_WORKSPACE_ID`
(SDK 1.x).

The key is returned to the caller only; `KeySource` says where it came from without holding it,
so the place can be shown and logged while the key itself never is. A key an HTTP header cannot
carry (a line break, a non-ASCII letter) is refused here, naming the place but never the key.

Where credentials may go (`AllowedHosts`): the official DashScope hosts (the catalog's regions) and
the hosts allowed outside the spec (`DASHSCOPE_HTTP_BASE_URL`, `--base-url`, `--allow-host`,
`HARNESS_ALLOW_HOSTS`). A spec from someone else decides nothing about where a key is sent.
In CI mode (`ci_mode`: `CI` or `HARNESS_CI` true, or `--trusted-hosts-only`) the same holds for
the inputs themselves: every send, key or not, goes only to those hosts or to loopback.
A base URL given outside the spec carries no credential of its own (`check_base_url`): it is
written into the manifest.
"""

from __future__ import annotations

import configparser
import functools
import ipaddress
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import urlsplit

from harness.errors import Problem, ServiceError, UsageError

ENV_VAR = "DASHSCOPE_API_KEY"
KEY_FILE_ENV = "DASHSCOPE_API_KEY_FILE_PATH"
PROFILE_ENVS = ("ALIBABA_CLOUD_PROFILE", "ALICLOUD_PROFILE")        # first set wins
WORKSPACE_ENVS = ("DASHSCOPE_WORKSPACE", "DASHSCOPE_WORKSPACE_ID")   # first set wins
INI_KEY = "dashscope_api_key"
BASE_URL_ENV = "DASHSCOPE_HTTP_BASE_URL"   # the official SDK's name, so setups carry over
ALLOW_ENV = "HARNESS_ALLOW_HOSTS"
# CI mode: GitHub Actions, GitLab, CircleCI, Travis and Buildkite set CI=true; Jenkins sets nothing,
# so HARNESS_CI=1 (or --trusted-hosts-only) turns it on there, and HARNESS_CI=0 turns it off anywhere.
CI_ENV, HARNESS_CI_ENV = "CI", "HARNESS_CI"
TRUSTED_ONLY_FLAG = "--trusted-hosts-only"
_FALSE = ("", "0", "false", "no", "off")
_TRUE = ("1", "true", "yes", "on")


@dataclass(frozen=True)
class KeySource:
    """Where a key was found (never the key)."""

    kind: str    # "env" | "env-file" | "ini" | "file"
    where: str   # "$DASHSCOPE_API_KEY", "/home/u/.alibabacloud/credentials [default]", ...


def _home(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or Path.home())


def ini_path(env: Mapping[str, str] = os.environ) -> Path:
    override = env.get("ALIBABA_CLOUD_CREDENTIALS_FILE")
    return Path(override).expanduser() if override else _home(env) / ".alibabacloud" / "credentials"


def profile(env: Mapping[str, str] = os.environ) -> str:
    return next((env[v] for v in PROFILE_ENVS if env.get(v)), "default")


def workspace(env: Mapping[str, str] = os.environ) -> tuple[str, str] | None:
    """(workspace id, the variable it came from), or None when none is set."""
    return next(((env[v].strip(), f"${v}") for v in WORKSPACE_ENVS if (env.get(v) or "").strip()), None)


def key_file_path(env: Mapping[str, str] = os.environ) -> Path:
    return _home(env) / ".dashscope" / "api_key"


def find_api_key(env: Mapping[str, str] = os.environ) -> tuple[str, KeySource] | None:
    """The first key found in the four places, with its place; None when there is none.

    An unreadable or malformed file in a default place is treated as holding no key (the message
    for a missing key names every place, so the user sees where to look). The file
    `DASHSCOPE_API_KEY_FILE_PATH` names was chosen on purpose: unreadable, it is an error (exit 4).
    """
    value = (env.get(ENV_VAR) or "").strip()
    if value:
        return checked_key(value, f"${ENV_VAR}"), KeySource("env", f"${ENV_VAR}")

    named = env.get(KEY_FILE_ENV)
    if named:
        path = Path(named).expanduser()
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise ServiceError(Problem(f"${KEY_FILE_ENV} names {_shown(path)}, which cannot be read ({why}); "
                                       "nothing was sent",
                                       hint=f"fix the path, or unset {KEY_FILE_ENV} to use the other places")) from None
        if value:
            where = f"{_shown(path)} (${KEY_FILE_ENV})"
            return checked_key(value, where), KeySource("env-file", where)

    path, section = ini_path(env), profile(env)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        if parser.read(path, encoding="utf-8") and parser.has_section(section):
            value = (parser.get(section, INI_KEY, fallback="") or "").strip()
            if value:
                where = f"{path} [{section}]"
                return checked_key(value, where), KeySource("ini", where)
    except (configparser.Error, OSError, UnicodeDecodeError):
        pass

    path = key_file_path(env)
    try:
        value = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        value = ""
    if value:
        return checked_key(value, str(path)), KeySource("file", str(path))
    return None


def unsendable(value: str) -> str | None:
    """What in `value` an HTTP header cannot carry ("a line break at character 3"), or None."""
    for i, ch in enumerate(value, 1):
        if "!" <= ch <= "~":
            continue
        what = ("a line break" if ch in "\r\n" else "a tab" if ch == "\t" else "a space" if ch == " "
                else "a non-ASCII character" if ord(ch) > 127 else "a control character")
        return f"{what} at character {i}"
    return None


def checked_key(value: str, where: str) -> str:
    """`value` when an HTTP header can carry it; else exit 4 naming the place and the position of
    the first bad character, never the key (httpx would quote it in its error, or crash on it)."""
    bad = unsendable(value)
    if bad:
        raise ServiceError(Problem(
            f"the API key in {where} holds {bad}, which an HTTP header cannot carry; nothing was sent",
            hint="copy the key again: a key is one line of printable ASCII, like sk-..."))
    return value


def _shown(path: Path) -> str:
    """A path under the home folder as ~/..., so the message (which lands in validate.txt and the
    reports) is the same on every machine and names no user."""
    try:
        return "~/" + Path(path).relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)


def missing_key_message(env: Mapping[str, str] = os.environ) -> str:
    """Names every place, with the exact paths this run looked at."""
    return (f"no DashScope API key: set {ENV_VAR} (or {KEY_FILE_ENV} to a file holding it), or put "
            f"`{INI_KEY} = sk-...` in section [{profile(env)}] of {_shown(ini_path(env))} "
            f"(ALIBABA_CLOUD_CREDENTIALS_FILE / ALIBABA_CLOUD_PROFILE or ALICLOUD_PROFILE choose the file and "
            f"section), or write the key to {_shown(key_file_path(env))}")


# -- where credentials may be sent ---------------------------------------------------------

_HOST_PORT = re.compile(r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
                        r"(?::(?P<port>\d{1,5}))?")


@dataclass(frozen=True)
class Destination:
    """Where a URL's request goes, as httpx (which sends it) parses the URL."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> "Destination | None":
        import httpx  # here, not at the top: `validate` of a spec naming no URL need not load it

        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError, ValueError):
            return None
        if parsed.scheme not in ("http", "https") or not parsed.raw_host:
            return None
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        return cls(parsed.scheme, parsed.raw_host.decode("ascii").lower(), port)

    @property
    def shown(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class _Allowed:
    host: str
    port: int | None      # None: any port
    scheme: str | None    # None: any scheme; a URL allowed as a whole keeps its scheme (no https → http)

    def admits(self, d: Destination) -> bool:
        return (d.host == self.host and self.port in (None, d.port)
                and self.scheme in (None, d.scheme))


def parse_host(value: str) -> tuple[str, int | None]:
    """`HOST` or `HOST:PORT` (IPv6 as `[::1]:8000`) → (host, port); ValueError saying what is wrong."""
    m = _HOST_PORT.fullmatch(value.strip())
    port = int(m["port"]) if m and m["port"] else None
    if not m or (port is not None and not 0 < port < 65536):
        raise ValueError(f"{value!r} is not HOST or HOST:PORT (e.g. 127.0.0.1:8000, embed.example.com, "
                         "[::1]:8000; no scheme and no path)")
    return m["host"].strip("[]").lower(), port


def ci_mode(env: Mapping[str, str] = os.environ, trusted_only: bool = False) -> bool:
    """Whether every send is held to hosts allowed outside the spec: `--trusted-hosts-only`, else
    `HARNESS_CI` when set (1/0, true/false, yes/no, on/off; anything else is exit 2), else `CI`
    holding a true value (any but empty, 0, false, no, off: CI services set `true` or their name)."""
    if trusted_only:
        return True
    own = (env.get(HARNESS_CI_ENV) or "").strip().lower()
    if own:
        if own not in _TRUE + _FALSE:
            raise UsageError(Problem(f"${HARNESS_CI_ENV}={own[:20]!r} is neither 1 nor 0",
                                     hint="HARNESS_CI=1 holds every send to trusted hosts (as CI=true does), "
                                          "HARNESS_CI=0 turns that off"))
        return own in _TRUE
    return (env.get(CI_ENV) or "").strip().lower() not in _FALSE


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and `localhost`: the machine's own services, nothing leaves it."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HostGrants(tuple):
    """What the command line allows: the `--allow-host` values, and whether `--trusted-hosts-only`
    was given. One value, so every stage that asks `allowed_hosts` gets both."""

    trusted_only: bool = False

    def __new__(cls, hosts=(), trusted_only: bool = False) -> "HostGrants":
        grants = super().__new__(cls, hosts)
        grants.trusted_only = bool(trusted_only)
        return grants


def check_base_url(url: str, origin: str) -> str | None:
    """What in a base URL would carry a secret: a user name or password, a query string or a
    fragment ("user:pass@"), or None. A base URL is written into manifest.json (and the path is
    appended to it), so it holds none; `origin` names where it came from, never the URL itself."""
    rest = url.split("://", 1)[1] if "://" in url else url
    if "@" in re.split(r"[/?#]", rest, maxsplit=1)[0]:
        what = "a user name or password (user:pass@)"
    elif "?" in url:
        what = "a query string (?...)"
    elif "#" in url:
        what = "a fragment (#...)"
    else:
        return None
    return (f"{origin} holds {what}: a base URL is written into manifest.json and the endpoint path goes after "
            "it, so it may carry no credential (not shown here)")


BASE_URL_HINT = ("give the bare base URL (scheme, host, port, path); the key goes in DASHSCOPE_API_KEY or the "
                 "model's api_key_env")


@dataclass(frozen=True)
class AllowedHosts:
    """The hosts a credential may be sent to; everything else is refused before anything is sent.
    In CI mode (`ci`) the hosts any data may be sent to: these and loopback. URLs (official,
    --base-url, the environment's) are parsed on the first question, so a spec that names no URL of
    its own never loads the HTTP client."""

    urls: tuple[str, ...]                 # allowed with their scheme and port
    official_urls: tuple[str, ...]        # the catalog's regions, shown in messages
    hosts: tuple[_Allowed, ...]           # --allow-host and HARNESS_ALLOW_HOSTS
    ci: bool = False                      # CI mode: keyless sends are held to these hosts and loopback too

    @functools.cached_property
    def entries(self) -> tuple[_Allowed, ...]:
        parsed = [Destination.of(u) for u in self.official_urls + self.urls]
        return tuple(_Allowed(d.host, d.port, d.scheme) for d in parsed if d is not None) + self.hosts

    @property
    def official(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d.host for d in map(Destination.of, self.official_urls) if d is not None))

    def admits(self, url: str) -> bool:
        d = Destination.of(url)
        return d is not None and any(a.admits(d) for a in self.entries)

    def admits_data(self, url: str) -> bool:
        """May the inputs (with no credential) go to `url`? Anywhere, outside CI mode; in CI mode
        only where a credential may go, or to loopback."""
        if not self.ci:
            return True
        d = Destination.of(url)
        return d is not None and (is_loopback(d.host) or any(a.admits(d) for a in self.entries))

    def refusal(self, what: str, url: str) -> tuple[str, str]:
        """(message, hint) for a spec that would send `what` to `url`."""
        where = _shown_host(url)
        message = f"this would send {what} to {where}, which is not an allowed host"
        hint = (f"credentials go only to {', '.join(self.official)} and to hosts allowed outside the spec: "
                f"pass --allow-host {where}, or add it to ${ALLOW_ENV} (comma-separated list)")
        return message, hint

    def data_refusal(self, what: str, url: str) -> tuple[str, str]:
        """(message, hint) for a spec that would send `what` (no credential) to `url` in CI mode."""
        where = _shown_host(url)
        message = (f"in CI mode this would send {what} to {where}, which is not an allowed host (a spec from a "
                   "pull request must not choose where the repository's data goes)")
        hint = (f"in CI mode data goes only to {', '.join(self.official)}, loopback and hosts allowed outside the "
                f"spec: pass --allow-host {where}, or add it to ${ALLOW_ENV}; HARNESS_CI=0 turns off the CI mode $CI "
                "turns on")
        return message, hint


def _shown_host(url: str) -> str:
    """Where `url` goes, as messages name it: host:port, never the rest (a user name, a password, a query)."""
    d = Destination.of(url)
    if d is not None:
        return d.shown
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port}" if parts.hostname and parts.port else \
            parts.hostname or "a URL that is not http(s)://host"
    except ValueError:
        return "a URL that is not http(s)://host"


def allowed_hosts(official_urls: Iterable[str], *, extra: Iterable[str] = (), base_url: str | None = None,
                  env: Mapping[str, str] = os.environ) -> AllowedHosts:
    """Official hosts (the catalog's region URLs, scheme and port included), `--base-url` and
    `DASHSCOPE_HTTP_BASE_URL` (likewise), `--allow-host` values and `HARNESS_ALLOW_HOSTS` (any port
    unless one is given); CI mode from the environment and `extra` (a `HostGrants` carries
    `--trusted-hosts-only`). A malformed `HARNESS_ALLOW_HOSTS` entry or `HARNESS_CI` is a usage
    error (exit 2), as is a `--base-url` carrying a credential; `DASHSCOPE_HTTP_BASE_URL` carrying
    one is exit 4, as a bad workspace id in the environment is."""
    for url, origin, error in ((base_url, "--base-url", UsageError), (env.get(BASE_URL_ENV), f"${BASE_URL_ENV}",
                                                                        ServiceError)):
        problem = check_base_url(url, origin) if url else None
        if problem:
            raise error(Problem(problem, hint=BASE_URL_HINT))
    ci = ci_mode(env, getattr(extra, "trusted_only", False))
    hosts: list[_Allowed] = []
    listed = [(v, "--allow-host") for v in extra]
    listed += [(v, f"${ALLOW_ENV}") for v in re.split(r"[,\s]+", env.get(ALLOW_ENV) or "") if v]
    for value, origin in listed:
        try:
            host, port = parse_host(value)
        except ValueError as exc:
            raise UsageError(Problem(f"{origin}: {exc}")) from None
        hosts.append(_Allowed(host, port, None))
    urls = tuple(u for u in (base_url, env.get(BASE_URL_ENV)) if u)
    return AllowedHosts(urls, tuple(official_urls), tuple(hosts), ci)


@functools.lru_cache(maxsize=8)
def _forms(secret: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys((secret, json.dumps(secret)[1:-1], repr(secret)[1:-1])))


def scrub(text: str, secret: str | None) -> str:
    """`text` without `secret`: as is, JSON- or repr-escaped, or its first 6+ characters (a body
    snippet cut short may end inside it)."""
    if not secret:
        return text
    forms = _forms(secret)
    if secret[:6] not in text and not any(f in text for f in forms):   # the usual case, checked cheaply
        return text
    for form in forms:
        text = text.replace(form, "***")
    for n in range(len(secret) - 1, 5, -1):
        if secret[:n] in text:
            text = text.replace(secret[:n], "***")
    return text
