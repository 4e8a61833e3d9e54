"""Spec inputs → `Input` values: inline items, input sets (harness.inputs.sets) and the entries
of evaluation data sets (the registry in harness.inputs.datasets), in the spec's order.
"""

from __future__ import annotations

import dataclasses
from typing import Iterator

from harness.evidence import canonical_json, sha256_bytes
from harness.inputs.datasets import DATASETS
from harness.inputs.files import InputFiles, media_part
from harness.inputs.sets import input_set
from harness.inputs.types import ID_RE, MODALITY_KEYS, Input, InputProblem, Part, TextRun, unicode_problem


def _default_id(modality: str, parts: tuple[Part, ...]) -> str:
    digest = sha256_bytes(canonical_json([p.ref() for p in parts]))
    return f"{modality}-{digest[:12]}"


def inline_input(entry: dict, index: int, files: InputFiles) -> Input:
    where = ("inputs", index)
    key = next(k for k in MODALITY_KEYS if k in entry)
    value = entry[key]
    if key == "text":
        bad = unicode_problem(value)
        if bad:
            raise InputProblem(where + (key,), bad, "write the character itself", False)
        parts: tuple[Part, ...] = (Part("text", value),)
    elif key in ("image", "video"):
        parts = (media_part(key, value, files, where + (key,)),)
    elif key == "multi_images":
        parts = tuple(media_part("image", v, files, where + (key, i)) for i, v in enumerate(value))
    else:
        fused = []
        if "text" in value:
            fused.append(Part("text", value["text"]))
        images = value.get("image", [])
        one = isinstance(images, str)
        for i, v in enumerate([images] if one else images):
            fused.append(media_part("image", v, files, where + ("fused", "image") + (() if one else (i,))))
        if "video" in value:
            fused.append(media_part("video", value["video"], files, where + ("fused", "video")))
        if len(fused) < 2:
            raise InputProblem(where + ("fused",), "a fused input needs at least two parts (text, image(s), video)",
                               "for a single modality use text:, image: or video:")
        parts = tuple(fused)
    input_id = entry.get("id") or _default_id(key, parts)
    if not ID_RE.match(input_id):
        raise InputProblem(where + ("id",), f"inputs[{index}].id {input_id!r} is not a valid input id",
                           "ids use letters, digits and . _ : @ - and start with a letter or digit", False)
    return Input(input_id, key, parts, where)


def iter_inputs(entries: list[dict], files: InputFiles, problems: list[InputProblem],
                runs: bool = False) -> Iterator[Input | TextRun]:
    """Every input of the spec in order. Problems are appended to `problems`; bad inputs are skipped.
    `runs`: an input set's chunk of texts comes as one `TextRun` (for the plan of a texts-only spec),
    else as its `Input`s."""
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue
        only = frozenset(entry["models"]) if isinstance(entry.get("models"), list) else None
        try:
            if "from" in entry:
                found = input_set(entry, index, files, problems)
            elif dataset := next((d for key, d in DATASETS.items() if key in entry), None):
                found = dataset.inputs(entry, index, files, problems)
            elif any(k in entry for k in MODALITY_KEYS):
                found = iter([inline_input(entry, index, files)])
            else:
                continue
            for item in found:
                if type(item) is TextRun:
                    item.models = only
                    if runs:
                        yield item
                    else:
                        yield from item
                else:
                    yield item if only is None else dataclasses.replace(item, models=only)
        except InputProblem as p:
            problems.append(p)
