"""An image–text set as inputs: a captions file (CSV with columns `image` and `caption`, one row
per caption; or JSONL with `image` and `caption` (a string) or `captions` (a list)) naming images
in a folder. Each image becomes an input `<prefix>img:<path>`, each caption `<prefix>cap:<path>:<n>`
(its n-th caption), and the entry brings two retrieval checks, as Flickr30k/COCO evaluations
report them: text→image (each caption finds its one image) and image→text (each image finds its
captions; all of them count as relevant). What they rank against (`judgements`) is read again
from the captions file.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from harness.evidence import sha256_bytes
from harness.inputs.datasets.beir import DEFAULT_LANGUAGES, escape, jsonl_rows
from harness.inputs.datasets.qrels import Judgements, JudgementsError
from harness.inputs.files import InputFiles, media_part
from harness.inputs.types import ID_RE, Input, InputProblem, Part, unicode_problem

MODALITIES = ("image", "text")
MAX_ERRORS = 20
# Flickr30k/COCO-style evaluations report recall at 1, 5 and 10 in both directions.
IMAGETEXT_K = (1, 5, 10)
DIRECTIONS = ("t2i", "i2t")


@dataclass
class Item:
    image: str              # as written in the captions file
    captions: list[str]
    line: int


def image_prefix(entry: dict) -> str:
    return f"{entry.get('prefix', '')}img:"


def caption_prefix(entry: dict) -> str:
    return f"{entry.get('prefix', '')}cap:"


def image_id(entry: dict, image: str) -> str:
    return image_prefix(entry) + escape(image)


def caption_id(entry: dict, image: str, n: int) -> str:
    return f"{caption_prefix(entry)}{escape(image)}:{n}"


def set_name(entry: dict) -> str:
    return str(entry.get("name") or Path(str(entry["imagetext"])).stem or "imagetext")


def images_dir(entry: dict) -> str:
    """The folder image paths start from, as written relative to the spec (default: the captions file's)."""
    given = entry.get("images")
    return str(given).rstrip("/") if given else (Path(str(entry["imagetext"])).parent.as_posix() or ".")


def parse_captions(data: bytes, shown: str) -> tuple[list[Item], list[tuple[int, str, str | None]]]:
    """The images in file order with their captions (rows of one image grouped), and the problems
    as (line, message, hint)."""
    problems: list[tuple[int, str, str | None]] = []
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return [], [(0, f"{shown} is not UTF-8 text (byte {e.start})", "save it as UTF-8")]
    rows: list[tuple[int, str, list[str]]] = []
    if shown.lower().endswith((".jsonl", ".ndjson")):
        for n, row, problem in jsonl_rows(text, shown):
            if problem:
                problems.append((n, problem, "one JSON object per line"))
                continue
            caps = row.get("captions", row.get("caption")) if isinstance(row, dict) else None
            caps = [caps] if isinstance(caps, str) else caps
            if not isinstance(row, dict) or not isinstance(row.get("image"), str) or not isinstance(caps, list) \
                    or not caps or not all(isinstance(c, str) and c.strip() for c in caps):
                problems.append((n, f"{shown}:{n}: needs `image` (a path) and `caption` (a text) or `captions` "
                                 "(a list of texts)", None))
                continue
            rows.append((n, row["image"], caps))
    else:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not {"image", "caption"} <= set(reader.fieldnames or []):
            return [], [(1, f"{shown}:1: the header needs the columns image and caption", None)]
        for row in reader:
            n = reader.line_num
            if not (row.get("image") or "").strip() or not (row.get("caption") or "").strip():
                problems.append((n, f"{shown}:{n}: empty image or caption", "fill both or drop the row"))
                continue
            rows.append((n, row["image"].strip(), [row["caption"]]))
    items: dict[str, Item] = {}
    for n, image, caps in rows:
        for c in caps:
            bad = unicode_problem(c)
            if bad:
                problems.append((n, f"{shown}:{n}: {bad}", None))
        item = items.setdefault(image, Item(image, [], n))
        item.captions.extend(caps)
    return list(items.values()), problems


def read_items(entry: dict, files: InputFiles) -> list[Item]:
    """The items again at check time (the file was checked when the run was planned; it is read
    through the same confinement). Raises InputProblem or OSError."""
    written = str(entry["imagetext"])
    items, _ = parse_captions(files.read_bytes(written, "captions file", ()), written)
    return items


def inputs(entry: dict, index: int, files: InputFiles, problems: list) -> Iterator[Input]:
    """The inputs of one `imagetext:` entry: every image, then every caption."""
    where = ("inputs", index, "imagetext")
    written = str(entry["imagetext"])
    try:
        data = files.read_bytes(written, "captions file", where)
    except FileNotFoundError:
        raise InputProblem(where, f"captions file {written!r} does not exist", "paths are relative to the spec file",
                           False) from None
    except OSError as e:
        raise InputProblem(where, f"cannot read {written}: {e.strerror}", None, False) from None
    files.record(written, sha256_bytes(data), len(data), "dataset",
                 format="jsonl" if written.lower().endswith((".jsonl", ".ndjson")) else "csv")
    items, found = parse_captions(data, written)
    for _, message, hint in found[:MAX_ERRORS]:
        problems.append(InputProblem(where, message, hint, False))
    if found:
        return
    folder = images_dir(entry)
    images, captions = [], []
    for item in items:
        iid = image_id(entry, item.image)
        if not ID_RE.match(caption_id(entry, item.image, len(item.captions))):
            problems.append(InputProblem(where, f"{written}:{item.line}: image path {item.image[:60]!r} makes an input "
                                         "id longer than 128 characters", "shorten the path or the `prefix:`", False))
            continue
        try:
            part = media_part("image", f"{folder}/{item.image}", files, where)
        except InputProblem as p:
            problems.append(InputProblem(where, f"{written}:{item.line}: {p.message}", p.hint, False))
            continue
        images.append(Input(iid, "image", (part,), where, f"{written} line {item.line}"))
        captions.extend(Input(caption_id(entry, item.image, n), "text", (Part("text", c),), where,
                              f"{written} line {item.line}") for n, c in enumerate(item.captions, start=1))
    yield from images
    yield from captions


def checks(entry: dict) -> list[dict]:
    """The two retrieval checks an `imagetext:` entry brings: text→image and image→text."""
    settings = dict(entry.get("retrieval") or {})
    name = settings.pop("name", None) or set_name(entry)
    return [{"retrieval": {"k": list(IMAGETEXT_K), **settings, "name": f"{name}-{direction}",
                           "imagetext": {"file": str(entry["imagetext"]), "images": images_dir(entry),
                                         "prefix": entry.get("prefix", ""), "direction": direction,
                                         "task": set_name(entry),
                                         **({"languages": entry["languages"]} if entry.get("languages") else {})}}}
            for direction in DIRECTIONS]


def judgements(check: dict, files: InputFiles) -> Judgements:
    """What a check an `imagetext:` entry brought ranks against (`check`: its `imagetext:` part): in
    text→image each caption's one image, in image→text each image's captions."""
    entry = {"imagetext": check["file"], "images": check["images"], "prefix": check.get("prefix", "")}
    try:
        items = read_items(entry, files)
    except InputProblem as p:
        raise JudgementsError(f"cannot read the captions {check['file']}: {p.message}") from None
    except OSError as e:
        raise JudgementsError(f"cannot read the captions {check['file']}: {e.strerror}") from None
    pairs = [(image_id(entry, i.image), [caption_id(entry, i.image, n) for n in range(1, len(i.captions) + 1)])
             for i in items]
    if check["direction"] == "t2i":
        qrels = {c: {img: 1} for img, caps in pairs for c in caps}
        docs = image_prefix(entry)
    else:
        qrels = {img: {c: 1 for c in caps} for img, caps in pairs}
        docs = caption_prefix(entry)
    # the data set's files: the captions file and every image it names, by the names it gives them
    files = ((check["file"], Path(check["file"]).name), *((f"{check['images']}/{i.image}", i.image) for i in items))
    return Judgements(qrels, check["file"], check.get("task"), "test", docs, files=files,
                      languages=tuple(check.get("languages") or DEFAULT_LANGUAGES))
