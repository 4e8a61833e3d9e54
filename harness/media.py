"""Local media: MIME sniffed from the bytes (never the extension), hashed, sent as data URIs.

The API takes no local paths; images go as `data:image/<format>;base64,...` (the documented way).
A file whose bytes are not an image is refused before anything is written.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

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

    def ref(self) -> dict:
        return {"kind": "image", "path": self.shown, "sha256": self.sha256, "size": self.size, "mime": self.mime}

    def data_uri(self) -> str:
        try:
            data = self.path.read_bytes()
        except OSError as e:
            raise MediaError(f"cannot read image {self.shown!r} any more ({e.strerror}): it changed while the run "
                             "was being written", "run again; do not edit inputs during a run") from None
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise MediaError(f"image {self.shown!r} changed while the run was being written (its sha256 is not "
                             "the one checked when the spec was planned)",
                             "run again; do not edit inputs during a run")
        return f"data:{self.mime};base64,{base64.b64encode(data).decode('ascii')}"


class MediaError(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


def inspect_local_image(shown: str, path: Path) -> LocalImage:
    """Open the local image `shown` (found at the resolved `path`), check it is one, and record
    what evidence needs. Raises MediaError."""
    if not path.exists():
        raise MediaError(f"image file {shown!r} does not exist (looked in {path.parent})",
                         "paths are relative to the spec file; or give an http(s):// URL")
    if path.is_dir():
        raise MediaError(f"image {shown!r} is a folder", "to embed every image in it, use `from: <folder>`")
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            h.update(head)
            while block := f.read(1 << 20):
                h.update(block)
        size = path.stat().st_size
    except OSError as e:
        raise MediaError(f"cannot read image {shown!r}: {e.strerror}", "check the file's permissions")
    kind = sniff(head)
    if kind is None:
        raise MediaError(f"{shown!r} is not an image (its bytes match no image format)",
                         "give a JPEG, PNG, WEBP, BMP, TIFF or GIF file; the extension is not trusted")
    return LocalImage(path, shown, h.hexdigest(), size, kind[0], kind[1])
