"""harness prepare: the public one-shot quick-start script, with a correct body.

Same flags as `prepare_multimodal_embedding_request.py` (--text/--image/--video repeatable, one
content item each, in that order; --model; --dimension; --output), plus every other parameter the
API takes (--instruct, --enable-fusion, --output-type, --fps, --res-level, --max-video-frames), but
`dimension` and every other option go inside `parameters` (the script put `dimension` at the top
level, where the API does not read it), the model's rules are checked, and local images become
data URIs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.commands import add_allow_path, flags
from harness.errors import HarnessError, Problem, SpecError
from harness.evidence import atomic_write, canonical_json
from harness.plan.build import build_plan
from harness.plan.payloads import render
from harness.spec.load import spec_from_data

NAME = "prepare"
HELP = "write one DashScope request body from flags (drop-in for the public quick-start script)"
ORDER = 40
DEFAULT_FOLDER = "aliyun-qwen-multimodal-embedding"
DEFAULT_TEXT = "Alibaba Cloud multimodal embedding"   # what the script sends when given no content


def add_parser(sub):
    p = sub.add_parser(NAME, help=HELP, description=__doc__.split("\n\n")[1].replace("\n", " "))
    p.add_argument("--text", action="append", default=[], help="a text content item (repeatable)")
    p.add_argument("--image", action="append", default=[], help="an image URL or local file (repeatable)")
    p.add_argument("--video", action="append", default=[], help="a video URL (repeatable)")
    p.add_argument("--model", default="qwen3-vl-embedding", help="model name (default qwen3-vl-embedding)")
    p.add_argument("--dimension", type=flags.setting(flags.DIMENSION), metavar="N",
                   help="output dimension (default: the model's default, sent explicitly)")
    p.add_argument("--instruct", help="custom task instruction")
    p.add_argument("--enable-fusion", action="store_true",
                   help="fuse the text, image(s) and video into ONE vector (qwen3-vl-embedding; at most one --text "
                        "and one --video)")
    output_types = flags.choices(flags.PARAMETERS + "output_type")
    p.add_argument("--output-type", choices=output_types,
                   help=f"vector format ({', '.join(output_types)}: the only one the API has for these models)")
    for flag, key, text in (("--fps", "fps", "share of video frames sampled (%s)"),
                            ("--res-level", "res_level", "image resolution tier (%s; 2026-03-06 snapshots)"),
                            ("--max-video-frames", "max_video_frames", "frames per video (%s; 2026-03-06 snapshots)")):
        pointer = flags.PARAMETERS + key
        p.add_argument(flag, type=flags.setting(pointer), metavar="N", help=text % flags.range_of(pointer))
    add_allow_path(p)
    p.add_argument("--output", help=f"request file (default $OUTPUT_DIR/{DEFAULT_FOLDER}/request.json, "
                   f"OUTPUT_DIR defaulting to ./output)")
    return p


# A problem found in the spec that prepare builds from the flags names that spec's keys; the user
# gave flags, so say the flag, and a fix in flags.
FLAG_OF = [("models[0].dimensions", "--dimension", "give one of the dimensions listed, or leave --dimension out "
            "for the model's default"),
           ("models[0]", "--model", "`harness models` lists the models and what each takes"),
           *((f"parameters.{key}", flag, f"leave {flag} out, or choose a --model that takes it")
             for key, flag in (("instruct", "--instruct"), ("enable_fusion", "--enable-fusion"),
                               ("output_type", "--output-type"), ("fps", "--fps"), ("res_level", "--res-level"),
                               ("max_video_frames", "--max-video-frames")))]
INPUT_HINT = "give a path relative to the current folder, or an http(s):// URL"


def _in_flags(problem: Problem, content_flags: list[str]) -> Problem:
    """The problem with its spec location ("models[0].dimensions[0]: ...") replaced by the flag."""
    where, sep, text = problem.message.partition(": ")
    if not sep:
        return problem
    for prefix, flag, hint in FLAG_OF:
        if where.startswith(prefix):
            return Problem(f"{flag}: {text}", hint=hint or problem.hint, severity=problem.severity)
    if where.startswith("inputs[") and where[7:].split("]", 1)[0].isdigit():
        index = int(where[7:].split("]", 1)[0])
        if index < len(content_flags):
            hint = INPUT_HINT if problem.hint and "spec" in problem.hint else problem.hint
            return Problem(f"{content_flags[index]}: {text}", hint=hint, severity=problem.severity)
    return problem


def _check_utf8(args) -> None:
    """A flag's bytes that are not UTF-8 reach Python as lone surrogates, which no request can carry:
    exit 3 naming the flag, before anything is built."""
    flagged = [("--text", args.text), ("--image", args.image), ("--video", args.video),
               ("--model", [args.model]), ("--instruct", [args.instruct or ""])]
    for flag, values in flagged:
        for n, value in enumerate(values, 1):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as e:
                which = f"{flag} #{n}" if len(values) > 1 else flag
                shown = (value[e.start].encode("utf-8", "surrogateescape").hex()
                         if "\udc80" <= value[e.start] <= "\udcff" else None)
                what = f"the byte 0x{shown}" if shown else f"{value[e.start]!r}"
                raise SpecError(Problem(
                    f"{which} is not valid UTF-8 text: {what} at character {e.start + 1}",
                    hint="pass the text in UTF-8 (check the terminal's or the script's encoding)")) from None


def _fused(args) -> list[dict]:
    """--enable-fusion: the contents as ONE fused input (one vector), in the combinations the API
    documents: a text, images, a video."""
    for flag, values in (("--text", args.text), ("--video", args.video)):
        if len(values) > 1:
            raise SpecError(Problem(f"--enable-fusion fuses at most one {flag} (got {len(values)})",
                                       hint=f"give one {flag}, or leave --enable-fusion out for one vector per item"))
    fused: dict = {}
    if args.text:
        fused["text"] = args.text[0]
    if args.image:
        fused["image"] = list(args.image)
    if args.video:
        fused["video"] = args.video[0]
    return [{"id": "fused-1", "fused": fused}]


def run(args) -> int:
    _check_utf8(args)
    inputs = ([{"id": f"text-{i}", "text": t} for i, t in enumerate(args.text, 1)]
              + [{"id": f"image-{i}", "image": v} for i, v in enumerate(args.image, 1)]
              + [{"id": f"video-{i}", "video": v} for i, v in enumerate(args.video, 1)])
    if not inputs:
        inputs = [{"id": "text-1", "text": DEFAULT_TEXT}]
    content_flags = ([f"--text #{i}" for i in range(1, len(args.text) + 1)]
                     + [f"--image #{i}" for i in range(1, len(args.image) + 1)]
                     + [f"--video #{i}" for i in range(1, len(args.video) + 1)])
    if args.enable_fusion and len(inputs) > 1:
        inputs, content_flags = _fused(args), ["--text/--image/--video"]
    parameters = {k: v for k, v in {"instruct": args.instruct, "enable_fusion": args.enable_fusion or None,
                                    "output_type": args.output_type, "fps": args.fps, "res_level": args.res_level,
                                    "max_video_frames": args.max_video_frames}.items() if v is not None}
    model = {"name": args.model}
    if args.dimension is not None:
        model["dimensions"] = [args.dimension]
    data = {"version": 1, "name": "prepare", "models": [model], "inputs": inputs}
    if parameters:
        data["parameters"] = parameters
    try:
        spec = spec_from_data(data, base_dir=Path.cwd(), display="prepare")
        plan_context = build_plan(spec, allow_paths=args.allow_paths)
    except HarnessError as e:
        raise HarnessError([_in_flags(p, content_flags) for p in e.problems], e.exit_code) from None
    with plan_context as plan:
        cell = plan.cells[0]
        if cell.protocol != "dashscope":
            raise SpecError(Problem(f"--model {args.model}: prepare writes DashScope request bodies only"))
        batches = list(plan.batches(cell))
        if len(batches) != 1:
            m = cell.model
            raise SpecError(Problem(
                f"{m.name} cannot take these {len(inputs)} content items in one request "
                f"(per request: {m.max_contents or 'no cap on'} items, {m.max_images or 'no cap on'} images, "
                f"{m.max_videos or 'no cap on'} videos"
                f"{', and one item only: it fuses everything' if m.fusion == 'always' else ''})",
                hint="send fewer items, or write a spec and use `harness run`, which splits requests"))
        body = render(cell, batches[0])
    output = (Path(args.output) if args.output
              else Path(os.environ.get("OUTPUT_DIR") or "output") / DEFAULT_FOLDER / "request.json")
    if output.is_dir():
        raise SpecError(Problem(f"--output {output} is a folder", hint="give a file name, e.g. request.json"))
    atomic_write(output, canonical_json(body, pretty=True))
    print(json.dumps({"ok": True, "request_path": str(output)}, ensure_ascii=False))
    return 0
