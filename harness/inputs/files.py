"""The files a spec's inputs read: confined, recorded, and a media value made a `Part`.

Every file an input reads must lie inside the spec's project (the git work tree holding the
spec, else the spec's folder) or a folder widened with `--allow-path`: a CSV row must not be able
to send any file on the machine as a data URI. Each file read is recorded for the manifest.

In CI the project is the runner's checkout and the spec may come from a stranger's pull request,
so three more rules hold for every file any reader opens, at any stage (`InputFiles.resolve`,
`open`, `read_bytes`, `listing`): nothing in a git directory (`GIT_DIR`), no well-known credential
file unless `--allow-path` names it (`CREDENTIAL_FILES`), and only regular files (`open_regular`).
"""

from __future__ import annotations

import csv
import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from harness.inputs.media import MediaError, inspect_local_image, is_data_uri, is_url, open_regular
from harness.inputs.types import InputProblem, Part

ALLOW_PATH_HINT = "move it into the project, or widen it with --allow-path DIR"
# Python's csv default (131,072 characters) refuses long texts and data URIs; this fits a 5 MB
# image as base64 twice over and still stops a runaway unquoted field. Set here, where every
# reader of an input's CSV file (input sets, captions files) takes it from.
CSV_FIELD_LIMIT = 16 * 1024 * 1024

csv.field_size_limit(CSV_FIELD_LIMIT)

# A git directory is never an input, whatever --allow-path says: in CI its config holds the job's
# token (actions/checkout persists it as an http extraheader in .git/config) and its objects every
# secret ever committed. `.git` anywhere on the real path (the folder; a worktree's or submodule's
# `.git` file), or a folder laid out as one (a bare mirror, a --separate-git-dir): the files each
# kind of git directory has, as git itself recognises one.
GIT_DIR = ".git"
GIT_DIR_LAYOUTS = (("HEAD", "objects", "refs"), ("HEAD", "commondir"))   # a repository's; a linked worktree's

# Well-known credential files: refused unless an --allow-path names them (the file, or a folder
# holding it), since a spec's project is the whole checkout. Matched against the real path inside
# the project: `name` is the file's name (shell-style), `dir/` a folder anywhere on the path,
# `dir/name` both.
CREDENTIAL_FILES = (".netrc", ".npmrc", ".pypirc", ".git-credentials", ".env", "*.pem", "*.key",
                    "id_rsa", "id_ed25519", "id_ecdsa", "id_dsa", ".aws/", ".ssh/", ".docker/config.json")
GIT_HINT = ("a git directory holds the repository's configuration (in CI, .git/config carries the job's token) "
            "and its history; copy what the spec needs out of it")


def credential_pattern(parts: tuple[str, ...]) -> str | None:
    """The CREDENTIAL_FILES pattern a path (its `parts` inside the project, the file last) matches, or None."""
    for pattern in CREDENTIAL_FILES:
        if pattern.endswith("/"):
            if pattern[:-1] in parts:
                return pattern
            continue
        tail = pattern.split("/")
        if len(parts) >= len(tail) and all(fnmatch.fnmatchcase(p, t) for p, t in zip(parts[-len(tail):], tail)):
            return pattern
    return None


def _has_magic(segment: str) -> bool:
    return any(c in segment for c in "*?[")


def glob_anchor(source: str) -> str:
    """The folder a `from:` glob starts in: the part before its first wildcard, up to a '/'."""
    head = re.split(r"[*?\[]", source, maxsplit=1)[0]
    return head if head.endswith("/") else os.path.dirname(head) or "."


def project_root(folder: Path) -> Path:
    """The git work tree holding `folder` (found by walking up for `.git`, once per spec), else `folder`."""
    for d in (folder, *folder.parents):
        if (d / ".git").exists():
            return d
    return folder


@dataclass
class InputFiles:
    """Where the files of a spec's inputs may come from, and a record of every file read."""

    base_dir: Path                          # relative paths start here (the spec's folder)
    roots: tuple[Path, ...]                 # the project, then each --allow-path folder
    read: dict[str, dict] = field(default_factory=dict)   # relative path → manifest record
    upload: bool = False                    # `upload_local_files: true`: local videos are taken too
    _git_dirs: dict[Path, bool] = field(default_factory=dict, repr=False)   # folder → laid out as a git dir

    @classmethod
    def for_spec(cls, base_dir: Path, allow: tuple | list = (), upload: bool = False) -> "InputFiles":
        base_dir = Path(base_dir).resolve()
        return cls(base_dir, (project_root(base_dir), *(Path(a).resolve() for a in allow)), upload=upload)

    def resolve(self, written: str, what: str, where: tuple) -> Path:
        """The real path of `written` (symlinks followed); InputProblem when it leaves every root."""
        if "\\" in written:    # a separator on Windows, a name's character here: a folder could not be verified
            raise InputProblem(where, f"{what} {written!r} holds a backslash",
                               "write paths with /: a run folder records them so, and `harness verify` reads "
                               "them so on every system; rename a file whose name holds one", False)
        try:
            real = (self.base_dir / os.path.expanduser(written)).resolve()
        except (OSError, ValueError) as e:     # a NUL byte, a name too long, a symlink loop
            raise InputProblem(where, f"{what} {written!r} is not a usable path ({e})", None, False) from None
        if not any(real.is_relative_to(root) for root in self.roots):
            widened = f" and the --allow-path folders ({', '.join(map(str, self.roots[1:]))})" if self.roots[1:] else ""
            verb = "is" if str(real) == written.rstrip("/") else f"resolves to {real},"
            raise InputProblem(where, f"{what} {written!r} {verb} outside the project {self.roots[0]}{widened}",
                               ALLOW_PATH_HINT, False)
        git = self.git_dir(real)
        if git is not None:
            found = "is a `.git` file naming a git directory" if real.name == GIT_DIR and not real.is_dir() \
                else f"is in a git directory ({self.shown(git)})"
            raise InputProblem(where, f"{what} {written!r} {found}, which a spec never reads", GIT_HINT, False)
        if not any(real.is_relative_to(root) for root in self.roots[1:]):   # an --allow-path names it: read it
            pattern = credential_pattern(real.relative_to(self.roots[0]).parts)
            if pattern is not None:
                raise InputProblem(where, f"{what} {written!r} is a well-known credential file (it matches "
                                   f"{pattern!r}), refused as an input",
                                   f"to embed it all the same, name it on the command line: --allow-path "
                                   f"{self.shown(real)} (the file, or a folder holding it)", False)
        return real

    def open(self, written: str, what: str, where: tuple) -> BinaryIO:
        """`written` opened for reading, confined as `resolve` says and a regular file (`open_regular`:
        OSError, e.g. FileNotFoundError or NotRegularFile, for the caller to word)."""
        return open_regular(self.resolve(written, what, where))

    def read_bytes(self, written: str, what: str, where: tuple) -> bytes:
        with self.open(written, what, where) as f:
            return f.read()

    def git_dir(self, real: Path) -> Path | None:
        """The git directory (or `.git` file) `real` lies in or is, or None. `.git` is looked for on
        the whole path; a git directory's layout from `real` up to the root that holds it."""
        if GIT_DIR in real.parts:
            return Path(*real.parts[:real.parts.index(GIT_DIR) + 1])
        top = next((root for root in self.roots if real.is_relative_to(root)), real)
        for folder in (real, *real.parents):
            if self._is_git_dir(folder):
                return folder
            if folder == top:
                break
        return None

    def _is_git_dir(self, folder: Path) -> bool:
        known = self._git_dirs.get(folder)
        if known is None:
            known = self._git_dirs[folder] = any(all((folder / name).exists() for name in names)
                                                 for names in GIT_DIR_LAYOUTS)
        return known

    def shown(self, path: Path) -> str:
        """`path` as a message names it: relative to the spec's folder when inside the project."""
        return os.path.relpath(path, self.base_dir) if path.is_relative_to(self.roots[0]) else str(path)

    def listing(self, written: str, where: tuple) -> list[str]:
        """The files of the image folder or glob `written` (absolute paths, sorted), as a shell glob
        finds them (`**` any folders; names starting with '.' only when the pattern's do), save that
        the walk never leaves the project: a link to a folder outside is an error naming the link,
        never what lies behind it, and a git directory is never entered."""
        has_glob = _has_magic(written)
        self.resolve(glob_anchor(written) if has_glob else written, "folder", where)
        full = str(self.base_dir / written)
        parts = full.split(os.sep)
        first = next((i for i, p in enumerate(parts) if _has_magic(p)), None)
        if first is None and not os.path.isdir(full):   # `format: images` naming one file
            return [full] if os.path.exists(full) else []
        if first is not None and ".." in parts[first:]:     # the anchor was checked; past it the walk only descends
            raise InputProblem(where, f"{written!r} climbs with `..` after a wildcard, which could leave the project",
                               "put any `..` before the first wildcard (e.g. `../imgs/*.png`), where it is checked",
                               False)
        start, segments = (full, ["*"]) if first is None else (os.sep.join(parts[:first]) or os.sep, parts[first:])
        found: set[str] = set()
        outside: list[str] = []

        def enter(folder: str, real: Path, chain: frozenset) -> bool:
            if real in chain:                       # a link back up: already being walked
                return False
            if not any(real.is_relative_to(root) for root in self.roots):     # a link leading out
                outside.append(os.path.relpath(folder, self.base_dir))
                return False
            return not self.git_dir(real)

        def names(folder: str, pattern: str) -> list[str]:
            try:
                listed = sorted(os.listdir(folder))
            except OSError:
                return []
            return [n for n in listed if (pattern.startswith(".") or not n.startswith("."))
                    and fnmatch.fnmatchcase(n, pattern)]

        def walk(folder: str, segments: list[str], chain: frozenset) -> None:
            segment, rest = segments[0], segments[1:]
            if segment == "**":
                walk(folder, rest or ["*"], chain)   # no folder at all; last, the files here
                for sub in (os.path.join(folder, n) for n in names(folder, "*")):
                    if os.path.isdir(sub) and enter(sub, real := Path(sub).resolve(), chain):
                        walk(sub, segments, chain | {real})
                return
            candidates = [os.path.join(folder, n) for n in names(folder, segment)] if _has_magic(segment) \
                else [os.path.join(folder, segment)]
            for sub in candidates:
                if not rest:
                    if os.path.exists(sub) and not os.path.isdir(sub):
                        found.add(sub)
                    continue
                if os.path.isdir(sub) and enter(sub, real := Path(sub).resolve(), chain):
                    walk(sub, rest, chain | {real})

        if os.path.isdir(start):
            walk(start, segments, frozenset({Path(start).resolve()}))
        if outside:
            links = ", ".join(sorted(outside)[:5]) + (f" and {len(outside) - 5} more" if len(outside) > 5 else "")
            raise InputProblem(where, f"{written!r} would be read through {'links' if len(outside) > 1 else 'a link'} "
                               f"to a folder outside the project {self.roots[0]}: {links}",
                               "move what it links to into the project, or widen it with --allow-path DIR "
                               "(the folder it leads to)", False)
        return sorted(found)

    def relative(self, written: str) -> str:
        """`written` relative to the spec's folder, POSIX (how the manifest names it on any machine)."""
        path = os.path.normpath(self.base_dir / os.path.expanduser(written))
        return Path(os.path.relpath(path, self.base_dir)).as_posix()

    def record(self, written: str, sha256: str, size: int, role: str, **extra) -> None:
        rel = self.relative(written)
        self.read.setdefault(rel, {"path": rel, "sha256": sha256, "size": size, "role": role, **extra})

    def records(self) -> list[dict]:
        return sorted(self.read.values(), key=lambda r: r["path"])


def media_part(kind: str, value: str, files: InputFiles, where: tuple) -> Part:
    """The image or video `value` as written (a URL, a data URI or a local path) as a Part; a local
    file must lie in the project, be what `kind` says by its bytes, and is recorded."""
    value = value.strip()
    if kind == "video":
        if is_url(value):
            return Part("video", value)
        if not files.upload:
            raise InputProblem(where, f"video {value!r} is not a URL",
                               "the API takes videos only as http(s):// or oss:// URLs; to send a local file "
                               "through DashScope's temporary storage, set `upload_local_files: true`", False)
        try:
            video = inspect_local_image(value, files.resolve(value, "video", where), "video")
        except MediaError as e:
            raise InputProblem(where, e.message, e.hint, False) from None
        files.record(value, video.sha256, video.size, "video", mime=video.mime)
        return Part("video", value, video=video)
    if is_url(value):
        return Part("image", value)
    if is_data_uri(value):
        head = value.split(",", 1)[0]
        if not re.match(r"^data:image/[a-z0-9.+-]+;base64$", head):
            raise InputProblem(where, "an inline image must be data:image/<format>;base64,...", None, False)
        return Part("image", value)
    try:
        image = inspect_local_image(value, files.resolve(value, "image", where))
    except MediaError as e:
        raise InputProblem(where, e.message, e.hint, False) from None
    files.record(value, image.sha256, image.size, "image", mime=image.mime)
    return Part("image", value, image)
