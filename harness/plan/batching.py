"""A cell's inputs packed into requests, and the spool the plan keeps its inputs in.

The `Batcher` packs within the model's per-request limits (contents, images, videos, texts), in
input order; an input that must come back as exactly one vector travels alone. The `Spool` holds
the resolved inputs between checking and writing: in memory while they are few, else in a file, so
memory stays flat in their number.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from harness.catalog.load import ModelInfo
from harness.evidence import OWNER, dead_owners, owner
from harness.folder import layout
from harness.inputs.types import Input
from harness.plan.cells import Cell

SPOOL = re.compile(r"^harness-inputs-" + OWNER + r"-\w+\.spool$")   # temp file of one process's inputs
MEMORY_ENV = "HARNESS_SPOOL_MEMORY"   # bytes of inputs a plan keeps in memory before spooling them (0: none)
DEFAULT_BATCH = 20          # when the catalog documents no per-request cap (undated tongyi, local)


@dataclass
class Batch:
    seq: int                        # 1-based, the payload file number
    inputs: list[Input]
    contents: int
    fused: bool                     # one input whose parts fuse via enable_fusion

    @property
    def file(self) -> str:
        return layout.request_name(self.seq)


def contents_of(inp: Input, model: ModelInfo) -> int:
    if inp.modality == "fused" and model.fusion == "enable_fusion":
        return len(inp.parts)
    return 1


def alone(inp: Input, cell: Cell) -> bool:
    """Must this input travel in a request of its own to come back as exactly one vector?"""
    return (cell.model.fusion == "always" or bool(cell.parameters.get("enable_fusion"))
            or (inp.modality == "fused" and cell.model.fusion == "enable_fusion"))


class Batcher:
    """Packs one cell's inputs into requests within the model's per-request limits, in input order.

    Incremental (`add` returns the requests it completed) so one pass over the inputs can feed
    every cell at once."""

    def __init__(self, cell: Cell, max_contents: int | None):
        m = cell.model
        self.cell = cell
        self.limit = min(m.max_contents or DEFAULT_BATCH, max_contents or 10**9)
        self.caps = [(k, cap) for k, cap in (("image", m.max_images), ("video", m.max_videos), ("text", m.max_texts))
                     if cap is not None]
        self.seq = 0
        self.cur: list[Input] = []
        self.contents = 0
        self.used = dict.fromkeys((k for k, _ in self.caps), 0)
        self.capmap = dict(self.caps)
        self.all_alone = m.fusion == "always" or bool(cell.parameters.get("enable_fusion"))

    def _flush(self) -> list[Batch]:
        if not self.cur:
            return []
        self.seq += 1
        done = Batch(self.seq, self.cur, self.contents, False)
        self.cur, self.contents = [], 0
        self.used = dict.fromkeys(self.used, 0)
        return [done]

    def add(self, inp: Input) -> list[Batch]:
        m = self.cell.model
        if len(inp.parts) == 1 and not self.all_alone:   # the hot path: one plain item
            kind = inp.parts[0].kind
            cap = self.capmap.get(kind)
            done = []
            if self.contents + 1 > self.limit or (cap is not None and self.used[kind] + 1 > cap):
                done = self._flush()
            self.cur.append(inp)
            self.contents += 1
            if cap is not None:
                self.used[kind] += 1
            return done
        if alone(inp, self.cell):
            done = self._flush()
            self.seq += 1
            fused = inp.modality == "fused" and m.fusion == "enable_fusion"
            return done + [Batch(self.seq, [inp], contents_of(inp, m), fused)]
        n = contents_of(inp, m)
        need = [(k, cap, inp.count(k)) for k, cap in self.caps]
        done = []
        if self.contents + n > self.limit or any(self.used[k] + c > cap for k, cap, c in need):
            done = self._flush()
        self.cur.append(inp)
        self.contents += n
        for k, _, c in need:
            self.used[k] += c
        return done

    def close(self) -> list[Batch]:
        return self._flush()


def batches(cell: Cell, inputs: Iterator[Input], max_contents: int | None) -> Iterator[Batch]:
    batcher = Batcher(cell, max_contents)
    for inp in inputs:
        yield from batcher.add(inp)
    yield from batcher.close()


def spool_memory() -> int:
    """Bytes a plan keeps in memory before going to a temporary file: $HARNESS_SPOOL_MEMORY, else 8 MB."""
    raw = os.environ.get(MEMORY_ENV, "")
    return int(raw) if raw.isdigit() else Spool.MEMORY


class Spool:
    """The plan's resolved inputs, in order, as they were checked: writing streams them back instead of
    resolving (and rendering) them again. `add` inside `with spool:`, whose end completes it.

    Inputs stay in memory while they fit `memory` bytes (about: 8 MB, some 12,000 short texts; no
    temporary file for a small run); past it they all go to a temporary file, pickled `CHUNK` at a
    time, so memory stays flat in their number: held in memory, 200,000 texts would still occupy
    190 MB of the process while it executes (bench/README.md, issue 25), pickled they cost 0.6 s.
    Files of killed runs are removed."""

    CHUNK = 1024
    MEMORY = 8 << 20
    PER_INPUT = 600            # bytes an `Input` of one short text takes in memory, beyond its strings

    def __init__(self, memory: int | None = None):
        for debris, _ in dead_owners(Path(tempfile.gettempdir()), SPOOL):
            debris.unlink(missing_ok=True)
        self.memory = spool_memory() if memory is None else memory
        self.path: Path | None = None
        self._out = None
        self._held: list[Input] = []
        self._bytes = 0

    def add(self, inp: Input, wire: int = 0) -> None:
        """Keep `inp`; `wire`: about the bytes its parts hold (`build.wire_bytes`)."""
        self._held.append(inp)
        if self._out is None:
            self._bytes += self.PER_INPUT + wire
            if self._bytes <= self.memory:
                return
            fd, name = tempfile.mkstemp(prefix=f"harness-inputs-{owner()}-", suffix=".spool")
            self.path, self._out = Path(name), os.fdopen(fd, "wb")
        if len(self._held) >= self.CHUNK:
            self._spill()

    def _spill(self) -> None:
        held, self._held = self._held, []
        for start in range(0, len(held), self.CHUNK):     # what memory held goes a chunk at a time too
            pickle.dump(held[start:start + self.CHUNK], self._out, protocol=pickle.HIGHEST_PROTOCOL)
            held[start:start + self.CHUNK] = [None] * min(self.CHUNK, len(held) - start)

    def __enter__(self) -> "Spool":
        return self

    def __exit__(self, *exc) -> None:
        if self._out is not None and not self._out.closed:
            if self._held:
                self._spill()
            self._out.close()

    def __iter__(self) -> Iterator[Input]:
        if self.path is None:
            yield from self._held
            return
        with open(self.path, "rb") as f:
            while True:
                try:
                    yield from pickle.load(f)
                except EOFError:
                    return

    def remove(self) -> None:
        self._held = []
        if self._out is not None:
            self._out.close()
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None
