"""Local media: MIME sniffed from the bytes (never the extension), hashed, sent as data URIs or uploaded.

The API takes no local paths; images go as `data:image/<format>;base64,...` (the documented way).
With `upload_local_files: true` a local video (which has no data-URI form) and an image over the
model's per-image limit go through DashScope's temporary storage instead: the payload file holds
`upload_placeholder(sha256)`, a stable stand-in the provider swaps for the `oss://` URL of the
upload when it sends (harness.providers.uploads). A file whose bytes are not an image (a video) is refused
before anything is written.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from harness.errors import ExitCode, Failure
from harness.evidence import sha256_bytes

# (magic bytes at offset 0, format, MIME). Data, not code: a new format is a new row.
_SIGNATURES: list[tuple[bytes, str, str]] = [
    (b"\xff\xd8\xff", "jpeg", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png", "image/png"),
    (b"GIF87a", "gif", "image/gif"),
    (b"GIF89a", "gif", "image/gif"),
    (b"BM", "bmp", "image/bmp"),
    (b"II*\x00", "tiff", "image/tiff"),
    (b"MM\x00*", "tiff", "image/tiff"),
    (b"\x00\x00\x01\x00", "ico", "image/x-icon"),
    (b"icns", "icns", "image/icns"),
    (b"\x01\xda", "sgi", "image/sgi"),
]


# Video containers by their first bytes; (offset, magic, format, MIME). MP4 and MOV share the ISO
# box layout (`ftyp` at offset 4); their brand tells them apart (`qt  ` is QuickTime).
_VIDEO_SIGNATURES: list[tuple[int, bytes, str, str]] = [
    (4, b"ftypqt", "mov", "video/quicktime"),
    (4, b"ftyp", "mp4", "video/mp4"),
    (4, b"moov", "mov", "video/quicktime"),
    (0, b"\x1aE\xdf\xa3", "mkv", "video/x-matroska"),   # WEBM is Matroska too
    (0, b"FLV", "flv", "video/x-flv"),
    (0, b"\x00\x00\x01\xba", "mpeg", "video/mpeg"),
    (0, b"\x00\x00\x01\xb3", "mpeg", "video/mpeg"),
]
UPLOAD_PREFIX = "upload:sha256:"


# What a path that is no regular file is, in words: reading a FIFO blocks until someone writes,
# a device such as /dev/zero never ends, a socket cannot be opened at all.
_SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISSOCK, "a socket"))


class NotRegularFile(OSError):
    """A path that is a FIFO, a device or a socket: never read as an input (`strerror` says which)."""


def open_regular(path: Path | str) -> BinaryIO:
    """`path` opened for reading when it is a regular file. Opened without blocking (a FIFO would
    wait for a writer) and without following a last symlink (the caller passes a resolved path);
    `NotRegularFile` for a FIFO, a device or a socket, IsADirectoryError for a folder."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ENXIO:       # a socket (or a FIFO with no writer, on some systems)
            raise NotRegularFile(errno.ENXIO, "not a regular file (a socket)", str(path)) from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            what = next((name for test, name in _SPECIAL if test(mode)), "a special file")
            raise NotRegularFile(errno.EINVAL, f"not a regular file ({what})", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def upload_placeholder(sha256: str) -> str:
    """What a payload file holds for a local file sent through temporary storage: tied to the
    bytes only, so the payload (and the response cache key) is the same for every upload."""
    return UPLOAD_PREFIX + sha256


def sniff_video(head: bytes) -> tuple[str, str] | None:
    """(format, MIME) from the first bytes of a file, or None when it is no known video container."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:11] == b"AVI":
        return "avi", "video/x-msvideo"
    for offset, magic, fmt, mime in _VIDEO_SIGNATURES:
        if head[offset:offset + len(magic)] == magic:
            return fmt, mime
    return None


def sniff(head: bytes) -> tuple[str, str] | None:
    """(format, MIME) from the first bytes of a file, or None when it is not a known image."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp", "image/webp"
    for magic, fmt, mime in _SIGNATURES:
        if head.startswith(magic):
            return fmt, mime
    return None


def is_url(value: str) -> bool:
    return value.startswith(("http://", "https://", "oss://"))


def is_data_uri(value: str) -> bool:
    return value.startswith("data:")


@dataclass(frozen=True)
class LocalImage:
    path: Path          # resolved path
    shown: str          # the path as written in the spec (what evidence records)
    sha256: str
    size: int
    format: str
    mime: str
    kind: str = "image"   # or "video"

    def ref(self) -> dict:
        return {"kind": self.kind, "path": self.shown, "sha256": self.sha256, "size": self.size, "mime": self.mime}

    def placeholder(self) -> str:
        return upload_placeholder(self.sha256)

    def data_uri(self) -> str:
        try:
            with open_regular(self.path) as f:
                data = f.read()
        except OSError as e:
            raise MediaError(f"cannot read image {self.shown!r} any more ({e.strerror}): it changed while the run "
                             "was being written", "run again; do not edit inputs during a run") from None
        if sha256_bytes(data) != self.sha256:
            raise MediaError(f"image {self.shown!r} changed while the run was being written (its sha256 is not "
                             "the one checked when the spec was planned)",
                             "run again; do not edit inputs during a run")
        return f"data:{self.mime};base64,{base64.b64encode(data).decode('ascii')}"


class MediaError(Failure):
    exit_code = ExitCode.SPEC_INVALID

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def inspect_local_image(shown: str, path: Path, kind: str = "image") -> LocalImage:
    """Open the local image (or video) `shown` (found at the resolved `path`), check it is one,
    and record what evidence needs. Raises MediaError."""
    if not path.exists():
        raise MediaError(f"{kind} file {shown!r} does not exist (looked in {path.parent})",
                         "paths are relative to the spec file; or give an http(s):// URL")
    if path.is_dir():
        raise MediaError(f"{kind} {shown!r} is a folder", "to embed every image in it, use `from: <folder>`"
                         if kind == "image" else "give one video file")
    h = hashlib.sha256()
    try:
        with open_regular(path) as f:
            head = f.read(64)
            h.update(head)
            while block := f.read(1 << 20):
                h.update(block)
            size = os.fstat(f.fileno()).st_size
    except OSError as e:
        raise MediaError(f"cannot read {kind} {shown!r}: {e.strerror}", "give an image or a video file"
                         if isinstance(e, NotRegularFile) else "check the file's permissions") from None
    if kind == "video":
        found = sniff_video(head)
        if found is None:
            raise MediaError(f"{shown!r} is not a video (its bytes match no video container)",
                             "give an MP4, MOV, AVI, MKV/WEBM, FLV or MPEG file; the extension is not trusted")
        return LocalImage(path, shown, h.hexdigest(), size, found[0], found[1], "video")
    found = sniff(head)
    if found is None:
        raise MediaError(f"{shown!r} is not an image (its bytes match no image format)",
                         "give a JPEG, PNG, WEBP, BMP, TIFF or GIF file; the extension is not trusted")
    return LocalImage(path, shown, h.hexdigest(), size, found[0], found[1])
