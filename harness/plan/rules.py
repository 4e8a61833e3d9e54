"""The catalog's rules on each input, and the spec's rules across inputs, cells and files.

Every break is reported at the spec line that caused it, naming what the model accepts. A rule
an input breaks is a `RuleBreak`: its message, hint and severity, and the group it belongs to
when many rows of one input set break it alike (reported once, with a count).
"""

from __future__ import annotations

from typing import NamedTuple

from harness.catalog import estimate
from harness.catalog.load import ModelInfo
from harness.errors import Problem
from harness.inputs.datasets import DATASETS
from harness.inputs.files import InputFiles
from harness.inputs.media import LocalImage
from harness.inputs.types import MODALITY_KEYS, Input, InputProblem
from harness.plan.cells import Cell, model_entries
from harness.spec.checkrefs import validate_check_refs
from harness.spec.load import Spec


class RuleBreak(NamedTuple):
    """One catalog rule one input breaks. `group`: the rule and the facts its message states, save
    the input's own file name, so the same break in many rows of an input set is reported once."""
    message: str
    hint: str | None
    severity: str                   # "error" | "warning"
    group: tuple


def input_rule_problems(inp: Input, model: ModelInfo, upload: bool = False) -> list[RuleBreak]:
    """Each rule of `model` that `inp` breaks. `upload`: the cell sends local files over the model's
    data-URI limit through temporary storage (`upload_local_files`)."""
    if inp.modality == "text":   # fast path: most inputs of large sets are plain texts
        if "text" not in model.modalities:
            return [_not_accepted(model, {"text"})]
        limit = model.text_max_tokens
        value = inp.parts[0].value
        # a token is at least one character's worth of UTF-8 / 4, so short texts cannot exceed the limit
        if not limit or len(value) <= limit:
            return []
    out: list[RuleBreak] = []
    if inp.modality == "fused":
        if model.fusion == "none":
            return [RuleBreak(f"{model.name} does not fuse modalities into one vector",
                              "fusing models: qwen3-vl-embedding, qwen2.5-vl-embedding, "
                              "tongyi-embedding-vision-*-2026-03-06; or exclude this model", "error",
                              (model.name, "fusion"))]
        if model.fusion in ("same_item", "always") and inp.count("image") > 1:
            out.append(RuleBreak(f"{model.name} fuses at most one image per item",
                                 "give one image, or use qwen3-vl-embedding", "error", (model.name, "fused images")))
    needed = {"multi_images"} if inp.modality == "multi_images" else {p.kind for p in inp.parts}
    missing = needed - set(model.modalities)
    if missing:
        out.append(_not_accepted(model, missing))
        return out
    if inp.modality == "multi_images" and model.max_multi_images and len(inp.parts) > model.max_multi_images:
        out.append(RuleBreak(f"{model.name} takes at most {model.max_multi_images} images in one multi_images item "
                             f"(this one has {len(inp.parts)})", "split it", "error", (model.name, "multi_images")))
    # an input travels whole in one request, so it alone must fit the per-request caps
    for kind, cap in (("image", model.max_images), ("video", model.max_videos)):
        if cap is not None and inp.count(kind) > cap:
            out.append(RuleBreak(f"{model.name} takes at most {cap} {kind}(s) per request "
                                 f"(this input has {inp.count(kind)})", None, "error",
                                 (model.name, "per request", kind)))
    for part in inp.parts:
        if part.image is not None:
            out.extend(_image_breaks(part.image, model, upload))
        if part.video is not None:
            out.extend(_video_breaks(part.video, model))
        if part.kind == "text" and model.text_max_tokens:
            tokens = estimate.text_tokens(part.value)
            if tokens > model.text_max_tokens:
                out.append(RuleBreak(f"text of about {tokens:,} tokens exceeds {model.name}'s limit of "
                                     f"{model.text_max_tokens:,}", "the provider may truncate or reject it; shorten it",
                                     "warning", (model.name, "text tokens", tokens)))
    return out


def _not_accepted(model: ModelInfo, kinds: set[str]) -> RuleBreak:
    accepts = ", ".join(sorted(model.modalities))
    return RuleBreak(f"{model.name} does not accept {'/'.join(sorted(kinds))} input (it accepts: {accepts})",
                     f"give the model `modalities: [{accepts}]` to send it only what it takes, "
                     "or exclude it in matrix.exclude", "error", (model.name, "modality", "/".join(sorted(kinds))))


# Every break of a rule on image (video) files is one group per severity, whichever model and rule.
IMAGE_FILES, VIDEO_FILES = ("image files",), ("video files",)


def _image_breaks(img: LocalImage, model: ModelInfo, upload: bool) -> list[RuleBreak]:
    out = []
    if model.image_max_bytes and img.size > model.image_max_bytes and upload:
        out.append(RuleBreak(f"image {img.shown!r} is {img.size:,} bytes, over {model.name}'s "
                             f"{model.image_max_bytes:,} bytes per image as a data URI: it goes through DashScope's "
                             "temporary storage (upload_local_files), where the service may still hold it to "
                             "that limit", "downscale or recompress it to send it inline", "warning", IMAGE_FILES))
    elif model.image_max_bytes and img.size > model.image_max_bytes:
        out.append(RuleBreak(f"image {img.shown!r} is {img.size:,} bytes; {model.name} takes at most "
                             f"{model.image_max_bytes:,} bytes per image", "downscale or recompress it"
                             + (", or set `upload_local_files: true` to send it through DashScope's temporary "
                                "storage" if model.provider == "dashscope" else ""), "error", IMAGE_FILES))
    if model.image_formats and img.format not in model.image_formats:
        out.append(RuleBreak(f"image {img.shown!r} is {img.format.upper()}; {model.name} accepts "
                             f"{', '.join(f.upper() for f in model.image_formats)}", "convert it", "error",
                             IMAGE_FILES))
    return out


def _video_breaks(video: LocalImage, model: ModelInfo) -> list[RuleBreak]:
    out = []
    if model.video_max_bytes and video.size > model.video_max_bytes:
        out.append(RuleBreak(f"video {video.shown!r} is {video.size:,} bytes; {model.name} takes at most "
                             f"{model.video_max_bytes:,} bytes per video", "shorten or recompress it", "error",
                             VIDEO_FILES))
    if model.video_formats and video.format not in model.video_formats:
        out.append(RuleBreak(f"video {video.shown!r} is {video.format.upper()}; {model.name} accepts "
                             f"{', '.join(f.upper() for f in model.video_formats)}", "convert it", "error",
                             VIDEO_FILES))
    if model.provider != "dashscope":
        out.append(RuleBreak(f"{model.name} cannot take the local video {video.shown!r}: only DashScope models "
                             "upload local files", "give a URL, or exclude the model", "error",
                             (model.name, "local video")))
    return out


UPLOAD_REGIONS = ("cn-beijing",)   # TMPURL: temporary storage is "available only in China (Beijing)"


def check_upload_region(spec: Spec, cells: list[Cell], problems: list[Problem]) -> None:
    """`upload_local_files` with a DashScope model served outside Beijing: the storage does not exist there."""
    region = spec.data.get("region", "cn-beijing")
    if spec.data.get("upload_local_files") and region not in UPLOAD_REGIONS \
            and any(c.model.provider == "dashscope" for c in cells):
        problems.append(spec.problem(("upload_local_files",), f"DashScope's temporary storage for local files "
                                     f"exists only in {', '.join(UPLOAD_REGIONS)}, and this spec runs in {region}",
                                     "send images as data URIs (drop `upload_local_files`) or give the media as "
                                     "public http(s):// URLs", prefer_key=True))


def check_export_path(spec: Spec, files: InputFiles, problems: list[Problem]) -> None:
    """A Milvus Lite `export.to` is a folder the run writes: it stays in the project (or an
    --allow-path folder), as input files do, so a spec cannot write elsewhere on the machine."""
    export = spec.data.get("export")
    to = export.get("to") if isinstance(export, dict) else None
    if isinstance(to, str) and to.strip() and "://" not in to:
        try:
            files.resolve(to, "the export database", ("export", "to"))
        except InputProblem as p:
            problems.append(spec.problem(p.where, p.message, p.hint, prefer_key=False))


def _written_inputs(spec: Spec) -> list:
    """The input entries as written, including those the schema refused."""
    entries = spec.document.get("inputs")
    return entries if isinstance(entries, list) else []


def starved_models(spec: Spec, cells: list[Cell], problems: list[Problem]) -> None:
    """A model whose `modalities:` filter matches none of the spec's inputs would be sent nothing.

    Judged from the input entries as written (an entry that failed for another reason still
    says what it would have given), so it never follows from another mistake."""
    offered: set[str] = set()
    for entry in _written_inputs(spec):
        if not isinstance(entry, dict):
            continue
        if "from" in entry:
            offered.update([k for k in ("text", "image", "video") if k in entry] or ["image"])
        elif any(key in entry for key in DATASETS):
            offered.update(next(d.MODALITIES for key, d in DATASETS.items() if key in entry))
        else:
            offered.update(k for k in MODALITY_KEYS if k in entry)
    if not offered:
        return                    # no inputs at all: reported on its own
    seen: set[str] = set()
    for cell in cells:
        if cell.model.name in seen or cell.modalities is None or not spec.intact(cell.where + ("modalities",)):
            continue
        seen.add(cell.model.name)
        if not cell.modalities & offered:
            problems.append(spec.problem(
                cell.where + ("modalities",),
                f"{cell.model.name} would get no inputs: its modalities [{', '.join(sorted(cell.modalities))}] "
                f"match none of this spec's inputs ({', '.join(sorted(offered))})",
                "widen `modalities:`, add inputs of those modalities, or remove the model", prefer_key=True))


def check_input_models(spec: Spec, cells: list[Cell], problems: list[Problem]) -> None:
    """An input's `models:` names models of this spec; one it names that the spec lacks is a typo."""
    known = {c.model.name for c in cells} | {e["name"] for e, _, _ in model_entries(spec)}
    if not known or (not spec.intact(("models",)) and "models" in spec.document):
        return                    # the models themselves were refused: reported on their own
    for i, entry in enumerate(spec.data.get("inputs") or []):
        names = entry.get("models") if isinstance(entry, dict) else None
        for j, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in known:
                problems.append(spec.problem(("inputs", i, "models", j), f"{name!r} is not a model of this spec",
                                             f"name one of: {', '.join(sorted(known))}"))


def check_refs(spec: Spec, ids: set[str], cells: list[Cell], problems: list[Problem], matrix_ok: bool) -> None:
    """Checks name input ids; let the checks module point at unknown ones before anything runs.

    An id written in the spec counts as known even when its input failed (that failure is
    reported already); cell ids are judged only when every model entry gave its cells."""
    checks = spec.data.get("checks")
    if not checks:
        return
    written = {e["id"] for e in _written_inputs(spec)
               if isinstance(e, dict) and "from" not in e and isinstance(e.get("id"), str)}
    # a refused model or matrix entry leaves the pools of model names and cell ids incomplete
    entries = (spec.data.get("models") or []) + ((spec.data.get("matrix") or {}).get("include") or [])
    names_known = None not in entries and ("models" in spec.data or spec.intact(("models",)))
    models = {c.model.name for c in cells} | {e["name"] for e, _, _ in model_entries(spec)}
    cells_known = matrix_ok and all(spec.intact((key,)) for key in ("models", "dimensions", "matrix"))
    problems.extend(validate_check_refs(checks, ids | written,
                                        lambda path: spec.positions.of(("checks",) + tuple(path)),
                                        file=spec.display if spec.path else None,
                                        cell_ids=[c.id for c in cells] if cells_known else None,
                                        models=sorted(models) if names_known else None))
