"""What a spec's inputs become, whichever way they were written (inline, input set, data set):
`Input` values of `Part`s, and `InputProblem`, the error that names the spec entry at fault.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass

from harness.errors import ExitCode, Failure
from harness.evidence import canonical_json, sha256_bytes
from harness.inputs.media import LocalImage, is_data_uri

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}\Z")   # \Z: "$" would let a trailing newline in
MODALITY_KEYS = ("text", "image", "video", "multi_images", "fused")


def text_ref(value: str) -> dict:
    """A text part's record (inputs.jsonl, an input's digest), its keys in sorted order already."""
    return {"chars": len(value), "kind": "text", "sha256": sha256_bytes(value.encode("utf-8"))}


@dataclass(frozen=True)
class Part:
    """One modality of an input. `value` is the text or the URL; `image` / `video` is set for local files."""

    kind: str                              # "text" | "image" | "video"
    value: str
    image: LocalImage | None = None
    video: LocalImage | None = None         # a local video (only with `upload_local_files: true`)

    @property
    def local(self) -> LocalImage | None:
        return self.image or self.video

    def ref(self) -> dict:
        if self.local is not None:
            return self.local.ref()
        if self.kind == "text":
            return text_ref(self.value)
        return {"kind": self.kind, "url": self.value if not is_data_uri(self.value) else "data:…",
                **({"sha256": sha256_bytes(self.value.encode())} if is_data_uri(self.value) else {})}

    def wire(self) -> str:
        if self.video is not None:
            return self.video.placeholder()
        return self.image.data_uri() if self.image is not None else self.value


@dataclass(frozen=True)
class Input:
    id: str
    modality: str                           # "text" | "image" | "video" | "multi_images" | "fused"
    parts: tuple[Part, ...]                 # multi_images: several image parts
    where: tuple                            # path of the spec entry that produced it
    row: str | None = None                  # "data/captions.csv row 3" for input sets
    models: frozenset[str] | None = None    # the entry's `models:`: only these models take it (None: all)

    def ref(self) -> dict:
        return {"id": self.id, "modality": self.modality, "parts": [p.ref() for p in self.parts],
                **({"from": self.row} if self.row else {})}

    def count(self, kind: str) -> int:
        if len(self.parts) == 1:  # the common case, on the hot path of batching
            return 1 if self.parts[0].kind == kind else 0
        return sum(1 for p in self.parts if p.kind == kind)


class InputProblem(Failure):
    exit_code = ExitCode.SPEC_INVALID

    def __init__(self, where: tuple, message: str, hint: str | None = None, prefer_key: bool = True):
        super().__init__(message)
        self.where, self.message, self.hint, self.prefer_key = where, message, hint, prefer_key


def unicode_problem(text: str) -> str | None:
    """Why `text` cannot be sent as UTF-8 (a lone surrogate, e.g. from "\\ud800"), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as e:
        return (f"the text holds a lone surrogate ({text[e.start]!r} at character {e.start + 1}), "
                "which is not valid Unicode")


_new = object.__new__
if [f.name for f in dataclasses.fields(Input)] != ["id", "modality", "parts", "where", "row", "models"] or \
        [f.name for f in dataclasses.fields(Part)] != ["kind", "value", "image", "video"]:   # pragma: no cover
    raise ImportError("text_input sets every field of Input and Part: update it")


def text_input(input_id: str, value: str, where: tuple, label: str | None, models: frozenset | None = None) -> Input:
    """`Input(input_id, "text", (Part("text", value),), where, label, models)`, its fields set directly:
    half the time of the frozen dataclasses' __init__, a million times over in a big input set."""
    part = _new(Part)
    part.__dict__.update(kind="text", value=value, image=None, video=None)
    inp = _new(Input)
    inp.__dict__.update(id=input_id, modality="text", parts=(part,), where=where, row=label, models=models)
    return inp


# JSON escapes (json.dumps with ensure_ascii=False, as canonical_json writes): a label without these
# is its own JSON string between quotes
_ESCAPED = re.compile(r'[\x00-\x1f"\\]')
_RECORD = ('{"from":%s,"id":"%s","modality":"text","parts":[{"chars":%d,"kind":"text","sha256":"%s"}]}\n',
           '{"id":"%s","modality":"text","parts":[{"chars":%d,"kind":"text","sha256":"%s"}]}\n')


@dataclass
class TextRun:
    """Consecutive text inputs of one spec entry, as lists: a plan of texts checks and writes a chunk of
    an input set's rows at once, with no object per input (`iter(run)` gives the `Input`s when a rule
    needs one). Every id matches ID_RE and every text encodes to UTF-8 and is not blank."""

    where: tuple
    ids: list[str]
    values: list[str]
    labels: list[str] | None          # the rows ("texts.csv row 3"); None: inline inputs
    models: frozenset[str] | None = None
    data: list[bytes] | None = None   # the texts in UTF-8 (made on first use)

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        labels = self.labels or [None] * len(self.ids)
        for input_id, value, label in zip(self.ids, self.values, labels):
            yield text_input(input_id, value, self.where, label, self.models)

    def utf8(self) -> list[bytes]:
        if self.data is None:
            self.data = [v.encode("utf-8") for v in self.values]
        return self.data

    def records(self) -> bytes:
        """The run's inputs.jsonl lines: `Input.ref()` through canonical_json, each (ids need no escaping)."""
        sha = hashlib.sha256
        digests = [sha(d).hexdigest() for d in self.utf8()]
        chars = map(len, self.values)
        if self.labels is None:
            lines = [_RECORD[1] % row for row in zip(self.ids, chars, digests)]
        else:
            labels = self.labels
            froms = (['"' + label + '"' for label in labels] if not _ESCAPED.search("".join(labels)) else
                     [canonical_json(label).decode() for label in labels])
            lines = [_RECORD[0] % row for row in zip(froms, self.ids, chars, digests)]
        return "".join(lines).encode("utf-8")
