"""The files a spec's inputs read: confined, recorded, and a media value made a `Part`.

Every file an input reads must lie inside the spec's project (the git work tree holding the
spec, else the spec's folder) or a folder widened with `--allow-path`: a CSV row must not be able
to send any file on the machine as a data URI. Each file read is recorded for the manifest.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.inputs.media import MediaError, inspect_local_image, is_data_uri, is_url
from harness.inputs.types import InputProblem, Part

ALLOW_PATH_HINT = "move it into the project, or widen it with --allow-path DIR"
# Python's csv default (131,072 characters) refuses long texts and data URIs; this fits a 5 MB
# image as base64 twice over and still stops a runaway unquoted field. Set here, where every
# reader of an input's CSV file (input sets, captions files) takes it from.
CSV_FIELD_LIMIT = 16 * 1024 * 1024

csv.field_size_limit(CSV_FIELD_LIMIT)


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

    @classmethod
    def for_spec(cls, base_dir: Path, allow: tuple | list = (), upload: bool = False) -> "InputFiles":
        base_dir = Path(base_dir).resolve()
        return cls(base_dir, (project_root(base_dir), *(Path(a).resolve() for a in allow)), upload=upload)

    def resolve(self, written: str, what: str, where: tuple) -> Path:
        """The real path of `written` (symlinks followed); InputProblem when it leaves every root."""
        try:
            real = (self.base_dir / os.path.expanduser(written)).resolve()
        except (OSError, ValueError) as e:     # a NUL byte, a name too long, a symlink loop
            raise InputProblem(where, f"{what} {written!r} is not a usable path ({e})", None, False) from None
        if not any(real.is_relative_to(root) for root in self.roots):
            widened = f" and the --allow-path folders ({', '.join(map(str, self.roots[1:]))})" if self.roots[1:] else ""
            verb = "is" if str(real) == written.rstrip("/") else f"resolves to {real},"
            raise InputProblem(where, f"{what} {written!r} {verb} outside the project {self.roots[0]}{widened}",
                               ALLOW_PATH_HINT, False)
        return real

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
