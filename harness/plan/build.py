"""Spec × catalog → cells (model × dimension) and the requests of each cell.

All catalog rules are checked here, before anything is written: unknown models, dimensions,
parameters, modalities, fusion mixes and size limits, each reported at the spec line that
caused it and naming what the model accepts. Order and ids are deterministic.
"""

from __future__ import annotations

import fnmatch
import os
import pickle
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from harness.catalog import estimate
from harness.catalog.load import Catalog, ModelInfo, load_catalog
from harness.providers.credentials import BASE_URL_ENV, AllowedHosts, allowed_hosts
from harness.errors import HarnessError, Problem, SpecError, UsageError
from harness.evidence import OWNER, dead_owners, owner
from harness.inputs.files import InputFiles
from harness.inputs.resolve import iter_inputs
from harness.inputs.types import MODALITY_KEYS, Input, InputProblem
from harness.spec.load import Spec, read_spec

SPOOL = re.compile(r"^harness-inputs-" + OWNER + r"-\w+\.spool$")   # temp file of one process's inputs
MAX_PAYLOAD_ENV = "HARNESS_MAX_PAYLOAD_BYTES"
DEFAULT_MAX_PAYLOAD = 4 << 30   # 4 GiB of request bodies per run unless the person running it says more
DEFAULT_BATCH = 20          # when the catalog documents no per-request cap (undated tongyi, local)


@dataclass
class Cell:
    id: str
    model: ModelInfo
    dimension: int                  # the vector length every input gets
    dimension_sent: int | None      # what goes in the request (None: the model's fixed size)
    parameters: dict                # parameters of every request of this cell
    endpoint: str
    api_key_env: str | None
    required: bool
    where: tuple                    # spec path of the model entry
    modalities: frozenset[str] | None = None   # only inputs of these modalities (None: all)
    upload: bool = False            # `upload_local_files: true` (DashScope): local videos and large images go by oss://
    region: str | None = None       # whose prices apply (DashScope); None: nothing is billed
    replicas: tuple[str, ...] = ()  # openai/*: every replica's endpoint when base_url lists several

    def takes(self, inp: Input) -> bool:
        return ((self.modalities is None or inp.modality in self.modalities)
                and (inp.models is None or self.model.name in inp.models))

    @property
    def protocol(self) -> str:
        return self.model.provider

    def manifest_entry(self) -> dict:
        return {"id": self.id, "model": self.model.name, "wire_model": self.model.wire_model,
                "provider": self.model.provider, "endpoint": self.endpoint, "dimension": self.dimension,
                "dimension_sent": self.dimension_sent, "parameters": self.parameters,
                "api_key_env": self.api_key_env, "required": self.required,
                "modalities": sorted(self.modalities) if self.modalities else None, "region": self.region,
                **({"upload_local_files": True} if self.upload else {}),
                # only when there are several, so a one-server spec's manifest is unchanged
                **({"replicas": list(self.replicas)} if self.replicas else {})}


@dataclass(frozen=True)
class CellFilter:
    """`--model`, `--dimension`, `--cell` (fnmatch globs, each repeatable): a slice of the plan's
    cells, chosen after the whole spec is checked. A cell is kept when it matches every kind given."""
    model: tuple[str, ...] = ()
    dimension: tuple[str, ...] = ()
    cell: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.model or self.dimension or self.cell)

    def admits(self, cell: dict) -> bool:
        """`cell`: a manifest cell entry (the plan's, or one a run recorded)."""
        values = {"model": str(cell.get("model")), "dimension": str(cell.get("dimension")), "cell": str(cell.get("id"))}
        return all(not globs or any(fnmatch.fnmatchcase(values[kind], g) for g in globs)
                   for kind, globs in self.as_dict().items())

    def describe(self) -> str:
        return "; ".join(f"--{k} {' '.join(v)}" for k, v in self.as_dict().items())

    def as_dict(self) -> dict[str, list[str]]:
        """What the manifest records (`filter`), so `verify` re-derives the same cells."""
        return {k: list(getattr(self, k)) for k in ("model", "dimension", "cell") if getattr(self, k)}

    @classmethod
    def from_dict(cls, data) -> "CellFilter":
        data = data if isinstance(data, dict) else {}
        return cls(**{k: tuple(str(g) for g in data.get(k) or ()) for k in ("model", "dimension", "cell")})

    def select(self, cells: list[Cell]) -> list[Cell]:
        """The cells this filter keeps; none is a usage error that names what there is."""
        kept = [c for c in cells if self.admits(c.manifest_entry())]
        if cells and not kept:
            raise UsageError(Problem(
                f"no cell matches {self.describe()}",
                hint=f"models: {', '.join(dict.fromkeys(c.model.name for c in cells))}; dimensions: "
                     f"{', '.join(dict.fromkeys(str(c.dimension) for c in cells))}; cells: "
                     f"{', '.join(c.id for c in cells)}"))
        return kept


@dataclass
class Batch:
    seq: int                        # 1-based, the payload file number
    inputs: list[Input]
    contents: int
    fused: bool                     # one input whose parts fuse via enable_fusion

    @property
    def file(self) -> str:
        return f"{self.seq:05d}.json"


@dataclass
class Plan:
    spec: Spec
    catalog: Catalog
    cells: list[Cell]
    input_count: int
    modality_counts: dict[str, int]
    warnings: list[Problem]
    max_contents: int | None
    _spool: Path | None = field(default=None, repr=False)
    input_files: list[dict] = field(default_factory=list)   # every file the inputs read (manifest inputs.files)

    def inputs(self) -> Iterator[Input]:
        """Stream the resolved inputs back from the spool (memory stays flat in their number)."""
        with open(self._spool, "rb") as f:
            while True:
                try:
                    yield pickle.load(f)
                except EOFError:
                    return

    def batches(self, cell: Cell) -> Iterator[Batch]:
        return batches(cell, (i for i in self.inputs() if cell.takes(i)), self.max_contents)

    def close(self) -> None:
        if self._spool is not None:
            try:
                os.unlink(self._spool)
            except FileNotFoundError:
                pass
            self._spool = None

    def __enter__(self) -> "Plan":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def slug(model_name: str) -> str:
    return model_name.replace("/", "--")


# -- content items and batching -----------------------------------------------------------

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
            return done + [Batch(self.seq, [inp], contents_of(inp, m), inp.modality == "fused" and m.fusion == "enable_fusion")]
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


# -- catalog rules for one input and one model --------------------------------------------

def input_rule_problems(inp: Input, model: ModelInfo, upload: bool = False) -> list[tuple[str, str | None, str]]:
    """(message, hint, severity) for each rule of `model` that `inp` breaks. `upload`: the cell sends
    local files over the model's data-URI limit through temporary storage (`upload_local_files`)."""
    if inp.modality == "text":   # fast path: most inputs of large sets are plain texts
        if "text" not in model.modalities:
            return [(f"{model.name} does not accept text input (it accepts: {', '.join(sorted(model.modalities))})",
                     f"give the model `modalities: [{', '.join(sorted(model.modalities))}]` to send it only what it "
                     "takes, or exclude it in matrix.exclude", "error")]
        limit = model.text_max_tokens
        value = inp.parts[0].value
        # a token is at least one character's worth of UTF-8 / 4, so short texts cannot exceed the limit
        if not limit or len(value) <= limit:
            return []
    out: list[tuple[str, str | None, str]] = []
    accepts = ", ".join(sorted(model.modalities))
    if inp.modality == "fused":
        if model.fusion == "none":
            return [(f"{model.name} does not fuse modalities into one vector",
                     "fusing models: qwen3-vl-embedding, qwen2.5-vl-embedding, tongyi-embedding-vision-*-2026-03-06; "
                     "or exclude this model", "error")]
        if model.fusion in ("same_item", "always") and inp.count("image") > 1:
            out.append((f"{model.name} fuses at most one image per item", "give one image, or use qwen3-vl-embedding", "error"))
    needed = {"multi_images"} if inp.modality == "multi_images" else {p.kind for p in inp.parts}
    missing = needed - set(model.modalities)
    if missing:
        out.append((f"{model.name} does not accept {'/'.join(sorted(missing))} input (it accepts: {accepts})",
                    f"give the model `modalities: [{', '.join(sorted(model.modalities))}]` to send it only what it takes, "
                    "or exclude it in matrix.exclude", "error"))
        return out
    if inp.modality == "multi_images" and model.max_multi_images and len(inp.parts) > model.max_multi_images:
        out.append((f"{model.name} takes at most {model.max_multi_images} images in one multi_images item "
                    f"(this one has {len(inp.parts)})", "split it", "error"))
    # an input travels whole in one request, so it alone must fit the per-request caps
    for kind, cap in (("image", model.max_images), ("video", model.max_videos)):
        if cap is not None and inp.count(kind) > cap:
            out.append((f"{model.name} takes at most {cap} {kind}(s) per request (this input has {inp.count(kind)})",
                        None, "error"))
    for part in inp.parts:
        img = part.image
        if img is not None:
            if model.image_max_bytes and img.size > model.image_max_bytes and upload:
                out.append((f"image {img.shown!r} is {img.size:,} bytes, over {model.name}'s "
                            f"{model.image_max_bytes:,} bytes per image as a data URI: it goes through DashScope's "
                            "temporary storage (upload_local_files), where the service may still hold it to "
                            "that limit", "downscale or recompress it to send it inline", "warning"))
            elif model.image_max_bytes and img.size > model.image_max_bytes:
                out.append((f"image {img.shown!r} is {img.size:,} bytes; {model.name} takes at most "
                            f"{model.image_max_bytes:,} bytes per image", "downscale or recompress it"
                            + (", or set `upload_local_files: true` to send it through DashScope's temporary "
                               "storage" if model.provider == "dashscope" else ""), "error"))
            if model.image_formats and img.format not in model.image_formats:
                out.append((f"image {img.shown!r} is {img.format.upper()}; {model.name} accepts "
                            f"{', '.join(f.upper() for f in model.image_formats)}", "convert it", "error"))
        video = part.video
        if video is not None:
            if model.video_max_bytes and video.size > model.video_max_bytes:
                out.append((f"video {video.shown!r} is {video.size:,} bytes; {model.name} takes at most "
                            f"{model.video_max_bytes:,} bytes per video", "shorten or recompress it", "error"))
            if model.video_formats and video.format not in model.video_formats:
                out.append((f"video {video.shown!r} is {video.format.upper()}; {model.name} accepts "
                            f"{', '.join(f.upper() for f in model.video_formats)}", "convert it", "error"))
            if model.provider != "dashscope":
                out.append((f"{model.name} cannot take the local video {video.shown!r}: only DashScope models "
                            "upload local files", "give a URL, or exclude the model", "error"))
        if part.kind == "text" and model.text_max_tokens:
            tokens = estimate.text_tokens(part.value)
            if tokens > model.text_max_tokens:
                out.append((f"text of about {tokens:,} tokens exceeds {model.name}'s limit of {model.text_max_tokens:,}",
                            "the provider may truncate or reject it; shorten it", "warning"))
    return out


# -- building the plan --------------------------------------------------------------------

def _model_entries(spec: Spec) -> list[tuple[dict, tuple, tuple]]:
    """(entry, path of the entry, path of its name) for each model of the spec the schema accepted."""
    if not spec.intact(("models",)) and "models" not in spec.data:
        return []                 # `models:` itself was refused: no default model stands in for it
    out = []
    for i, m in enumerate(spec.data.get("models") or ["qwen3-vl-embedding"]):
        if m is None:
            continue              # an entry the schema refused
        entry = {"name": m} if isinstance(m, str) else dict(m)
        out.append((entry, ("models", i), ("models", i) if isinstance(m, str) else ("models", i, "name")))
    return out


def _dims_for(model: ModelInfo, dims, dims_path: tuple, spec: Spec, problems: list[Problem],
              excluded) -> list[int]:
    if dims in (None, "default"):
        return [model.default_dimension]
    if dims == "all":
        return list(model.dimensions)
    out = []
    for j, d in enumerate(dims):
        if d is None:
            continue              # refused by the schema (not an integer in range), reported there
        if d in model.dimensions:
            out.append(d)
        elif not excluded(model.name, d):
            problems.append(spec.problem(
                dims_path + (j,), f"{model.name} does not support output dimension {d} "
                f"(it supports: {', '.join(map(str, model.dimensions))})",
                f"remove it, give this model its own `dimensions:`, or add "
                f"{{model: {model.name}, dimension: {d}}} to matrix.exclude"))
    return out


def _endpoint(model: ModelInfo, entry: dict, where: tuple, spec: Spec, catalog: Catalog, base_url: str | None,
              problems: list[Problem], allowed: AllowedHosts | None = None,
              endpoints: dict[str, str] | None = None) -> str:
    """The URL a cell's requests go to. A URL the spec chose may receive a credential (the DashScope
    key, or the variable an openai/* model names in api_key_env) only on an allowed host."""
    if model.provider == "local":
        return f"local://{model.wire_model}"
    if model.provider == "openai":
        bases = _base_urls(entry)
        if not bases:
            problems.append(spec.problem(where, f"{model.name} needs a base_url (the OpenAI-compatible server)",
                                         "e.g. - {name: %s, base_url: http://127.0.0.1:8000/v1}" % model.name,
                                         prefer_key=True))
            return ""
        if entry.get("api_key_env"):   # no key, nothing to leak: a self-hosted server may be anywhere
            listed = isinstance(entry.get("base_url"), list)
            for i, base in bases:   # the key goes to every replica: each must be allowed
                _refuse_unless_allowed(base, f"${entry['api_key_env']} (the api_key_env of {model.name})",
                                       where + ("base_url", i) if listed else where + ("base_url",),
                                       spec, allowed, problems)
        return bases[0][1].rstrip("/") + "/embeddings"
    if endpoints and endpoints.get(model.name):
        return endpoints[model.name]  # re-planning a run (verify): where it was actually sent
    region = spec.data.get("region", "cn-beijing")
    if isinstance(entry.get("base_url"), list):
        problems.append(spec.problem(where + ("base_url",), f"{model.name} is a DashScope model: its base_url "
                                     "is one URL (a list of replicas is for openai/* models)",
                                     "give one URL, or leave base_url out to use the region's"))
        return ""
    base = base_url
    if not base:   # --base-url is the user's own choice; what the spec names must be allowed
        base = entry.get("base_url") or spec.data.get("endpoint")
        if base:
            _refuse_unless_allowed(base, "the DashScope API key",
                                   where + ("base_url",) if entry.get("base_url") else ("endpoint",),
                                   spec, allowed, problems)
    base = base or os.environ.get(BASE_URL_ENV)
    if not base:
        if model.regions and region not in model.regions:
            problems.append(spec.problem(("region",) if "region" in spec.data else where,
                                         f"{model.name} is not offered in {region} (only in: {', '.join(model.regions)})",
                                         "change `region:`, or exclude the model"))
        base = catalog.regions[region]
    return base.rstrip("/") + catalog.embedding_path


def _base_urls(entry: dict) -> list[tuple[int, str]]:
    """(position, URL) of an openai/* model's base_url: one string, or a list of replicas (entries
    the schema refused are None here and left out)."""
    given = entry.get("base_url")
    listed = given if isinstance(given, list) else [given]
    return [(i, b) for i, b in enumerate(listed) if isinstance(b, str) and b]


def replica_endpoints(model: ModelInfo, entry: dict) -> tuple[str, ...]:
    """Every replica's endpoint when an openai/* model lists more than one base URL, else ()."""
    if model.provider != "openai" or not isinstance(entry.get("base_url"), list):
        return ()
    ends = tuple(dict.fromkeys(b.rstrip("/") + "/embeddings" for _, b in _base_urls(entry)))
    return ends if len(ends) > 1 else ()


def _refuse_unless_allowed(url: str, what: str, path: tuple, spec: Spec, allowed: AllowedHosts | None,
                           problems: list[Problem]) -> None:
    if allowed is not None and not allowed.admits(url):
        problem = spec.problem(path, *allowed.refusal(what, url))
        if problem not in problems:   # one spec `endpoint:` serves every DashScope model
            problems.append(problem)


def _check_export_host(spec: Spec, allowed: AllowedHosts | None, problems: list[Problem]) -> None:
    """`export:` with a token_env sends that variable to the Milvus server at `to`: the same rule."""
    export = spec.data.get("export")
    if isinstance(export, dict) and export.get("token_env") and isinstance(export.get("to"), str) \
            and "://" in export["to"]:
        _refuse_unless_allowed(export["to"], f"${export['token_env']} (the export's token_env)",
                               ("export", "to"), spec, allowed, problems)


UPLOAD_REGIONS = ("cn-beijing",)   # TMPURL: temporary storage is "available only in China (Beijing)"


def _check_upload_region(spec: Spec, cells: list[Cell], problems: list[Problem]) -> None:
    """`upload_local_files` with a DashScope model served outside Beijing: the storage does not exist there."""
    region = spec.data.get("region", "cn-beijing")
    if spec.data.get("upload_local_files") and region not in UPLOAD_REGIONS \
            and any(c.model.provider == "dashscope" for c in cells):
        problems.append(spec.problem(("upload_local_files",), f"DashScope's temporary storage for local files "
                                     f"exists only in {', '.join(UPLOAD_REGIONS)}, and this spec runs in {region}",
                                     "send images as data URIs (drop `upload_local_files`) or give the media as "
                                     "public http(s):// URLs", prefer_key=True))


def _check_export_path(spec: Spec, files: InputFiles, problems: list[Problem]) -> None:
    """A Milvus Lite `export.to` is a folder the run writes: it stays in the project (or an
    --allow-path folder), as input files do, so a spec cannot write elsewhere on the machine."""
    export = spec.data.get("export")
    to = export.get("to") if isinstance(export, dict) else None
    if isinstance(to, str) and to.strip() and "://" not in to:
        try:
            files.resolve(to, "the export database", ("export", "to"))
        except InputProblem as p:
            problems.append(spec.problem(p.where, p.message, p.hint, prefer_key=False))


def build_cells(spec: Spec, catalog: Catalog, problems: list[Problem], base_url: str | None = None,
                allowed: AllowedHosts | None = None, endpoints: dict[str, str] | None = None) -> list[Cell]:
    data = spec.data
    upload = bool(data.get("upload_local_files"))
    matrix = data.get("matrix") or {}
    # matrix entries the schema refused are None here: left out, reported by the schema
    excludes = [(k, ex) for k, ex in enumerate(matrix.get("exclude") or []) if ex is not None]
    used_excludes = dict.fromkeys((k for k, _ in excludes), False)

    def excluded(model: str, dim: int | None) -> bool:
        hit = False
        for k, ex in excludes:
            if ex.get("model", model) == model and (dim is None and "dimension" not in ex or ex.get("dimension", dim) == dim):
                used_excludes[k] = hit = True
        return hit

    global_params = data.get("parameters") or {}
    required_all = bool((data.get("execution") or {}).get("required", False))
    includes = [(k, inc) for k, inc in enumerate(matrix.get("include") or []) if inc is not None]
    entries = _model_entries(spec)
    for k, inc in includes:
        if not any(e["name"] == inc["model"] for e, _, _ in entries):
            entries.append(({"name": inc["model"]}, ("matrix", "include", k), ("matrix", "include", k, "model")))

    cells: list[Cell] = []
    seen_models: dict[str, tuple] = {}
    for entry, where, name_path in entries:
        name = entry["name"]
        model = catalog.get(name)
        if model is None:
            close = catalog.suggest(name)
            problems.append(spec.problem(name_path, f"unknown model {name!r}",
                                         f"did you mean {close[0]!r}?" if close else
                                         f"known models: {', '.join(catalog.names())}"))
            continue
        if name in seen_models:
            problems.append(spec.problem(name_path, f"model {name!r} is listed twice",
                                         "list each model once; per-model overrides go on that one entry"))
            continue
        seen_models[name] = where
        if excluded(name, None):
            continue
        params = {**global_params, **(entry.get("parameters") or {})}
        for key in params:
            if key not in model.parameters:
                p_path = where + ("parameters", key) if key in (entry.get("parameters") or {}) else ("parameters", key)
                accepts = ", ".join(sorted(model.parameters)) or "none"
                problems.append(spec.problem(p_path, f"{model.name} does not accept parameter {key!r} (it accepts: {accepts})",
                                             "set it per model under that model's `parameters:`, or exclude the model",
                                             prefer_key=True))
        dims_spec = entry.get("dimensions", data.get("dimensions", "default"))
        dims_path = where + ("dimensions",) if "dimensions" in entry else ("dimensions",)
        if where[0] == "matrix":
            dims = []
        else:
            dims = _dims_for(model, dims_spec, dims_path, spec, problems, excluded)
        endpoint = _endpoint(model, entry, where, spec, catalog, base_url, problems, allowed, endpoints)
        modalities = _modalities(spec, entry, where)
        region = data.get("region", "cn-beijing") if model.provider == "dashscope" else None
        for d in dims:
            if excluded(name, d):
                continue
            _add_cell(cells, model, d, params, endpoint, entry, where, required_all, modalities, upload, region)
        for k, inc in includes:
            if inc["model"] != name:
                continue
            if inc["dimension"] not in model.dimensions:
                problems.append(spec.problem(("matrix", "include", k, "dimension"),
                                             f"{model.name} does not support output dimension {inc['dimension']} "
                                             f"(it supports: {', '.join(map(str, model.dimensions))})"))
            elif not any(c.model.name == name and c.dimension == inc["dimension"] for c in cells):
                _add_cell(cells, model, inc["dimension"], params, endpoint, entry, where, required_all, modalities,
                          upload, region)
    for k, used in used_excludes.items():
        if not used:
            problems.append(spec.problem(("matrix", "exclude", k), "this exclude matches no cell",
                                         "check the model name and dimension", severity="warning"))
    if not cells and not any(p.is_error for p in problems):
        problems.append(spec.problem(("models",), "the matrix is empty: every cell was excluded", prefer_key=True))
    return cells


def _modalities(spec: Spec, entry: dict, where: tuple) -> frozenset[str] | None:
    """The model's input filter (None: every input). When the schema refused part of it, only
    the valid names count, and never "all": a typo must not send the model what it was spared."""
    names = entry.get("modalities")
    if spec.intact(where + ("modalities",)):
        return frozenset(names) if names else None
    return frozenset(m for m in names or () if m is not None)


def _add_cell(cells, model, d, params, endpoint, entry, where, required_all, modalities, upload=False, region=None) -> None:
    sent = d if model.dimension_param else None
    wire_params = dict(params)
    if model.provider == "dashscope" and sent is not None:
        wire_params["dimension"] = sent
    cells.append(Cell(id=f"{slug(model.name)}-{d}", model=model, dimension=d, dimension_sent=sent,
                      parameters=wire_params, endpoint=endpoint, api_key_env=entry.get("api_key_env"),
                      required=bool(entry.get("required", required_all)), where=where,
                      modalities=modalities, upload=upload and model.provider == "dashscope",
                      region=region, replicas=replica_endpoints(model, entry)))


def wire_bytes(inp: Input) -> int:
    """About how many bytes an input adds to a request body (a local image travels as base64)."""
    total = 0
    for p in inp.parts:
        if p.image is not None:
            total += 4 * -(-p.image.size // 3) + len(p.image.mime) + 13
        else:
            total += len(p.value.encode("utf-8", "surrogatepass"))
    return total


def max_payload_bytes(value: int | None = None, env=os.environ) -> int:
    """The run's budget for request bodies: `--max-payload-bytes`, else $HARNESS_MAX_PAYLOAD_BYTES,
    else 4 GiB. Never from the spec: a spec from a pull request must not raise its own bound."""
    if value is not None:
        return value
    raw = env.get(MAX_PAYLOAD_ENV)
    if raw:
        try:
            if int(raw) > 0:
                return int(raw)
        except ValueError:
            pass
        raise UsageError(Problem(f"${MAX_PAYLOAD_ENV}={raw[:40]!r} is not a positive number of bytes"))
    return DEFAULT_MAX_PAYLOAD


def _payload_problem(spec: Spec, planned: int, budget: int, cells: list[Cell]) -> Problem:
    return spec.problem(("inputs",), f"the requests would carry about {planned / 1e6:,.0f} MB "
                        f"({len(cells)} cells), over the budget of {budget / 1e6:,.0f} MB: an input repeated "
                        "many times (or a huge text) multiplies what is written and sent",
                        f"if this is meant, raise it with --max-payload-bytes or ${MAX_PAYLOAD_ENV}",
                        prefer_key=True)


def _scan_inputs(spec: Spec, cells: list[Cell], problems: list[Problem], spool,
                 files: InputFiles, budget: int = DEFAULT_MAX_PAYLOAD) -> tuple[int, Counter, set[str]]:
    """One pass over every input: ids and catalog rules per model; each input is spooled so the
    writing pass streams them back instead of resolving (and rendering) them again."""
    input_problems: list[InputProblem] = []
    seen: dict[str, str | None] = {}     # id → the row that gave it (None: an inline input, named by its id)
    counts: Counter = Counter()
    models = {c.model.name: c for c in cells}   # one representative cell per model: rules are per model
    # identical rule breaks of many rows of one input set are reported once, with a count
    grouped: dict[tuple, list] = {}
    n = planned = 0
    # Ids written in the spec are checked from the spec itself, so a duplicate is reported even
    # when one of the two inputs fails for another reason (a missing image, say).
    entries = spec.data.get("inputs") or []
    declared: set[str] = set()
    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and "from" not in entry and isinstance(entry.get("id"), str):
            if entry["id"] in declared:
                problems.append(spec.problem(("inputs", i, "id"), f"duplicate input id {entry['id']!r} "
                                             f"(first used by input {entry['id']!r})",
                                             "give each input its own `id:`", prefer_key=True))
            else:
                declared.add(entry["id"])
    for inp in iter_inputs(entries, files, input_problems):
        label = inp.row or f"input {inp.id!r}"
        explicit = inp.row is None and isinstance(entries[inp.where[1]].get("id"), str)
        if inp.id in seen or (not explicit and inp.id in declared):
            if explicit:
                continue          # reported above
            first = seen.get(inp.id) or f"input {inp.id!r}"
            problems.append(spec.problem(inp.where + (("id",) if inp.row is None else ()),
                                         f"duplicate input id {inp.id!r} ({label}; first used by {first})",
                                         "give each input its own `id:`", prefer_key=True))
            continue
        seen[inp.id] = inp.row
        # Bytes, not values, are what a hostile spec multiplies: stop before any is written.
        planned += wire_bytes(inp) * sum(1 for c in cells if c.takes(inp))
        if planned > budget:
            problems.append(_payload_problem(spec, planned, budget, cells))
            break
        for cell in models.values():
            if not cell.takes(inp):
                continue
            for message, hint, severity in input_rule_problems(inp, cell.model, cell.upload):
                key = (inp.where, message if inp.row is None else message.split(" (")[0].split("'")[0], severity)
                grouped.setdefault(key, [message, hint, severity, label, 0])[4] += 1
        counts[inp.modality] += 1
        n += 1
        if spool is not None:
            pickle.dump(inp, spool, protocol=pickle.HIGHEST_PROTOCOL)
    for (where, _, _), (message, hint, severity, first, count) in grouped.items():
        text = f"{first}: {message}" if count == 1 else f"{count} inputs ({first} and more): {message}"
        problems.append(spec.problem(where, text, hint, severity=severity, prefer_key=True))
    for p in input_problems:
        problems.append(spec.problem(p.where, p.message, p.hint, prefer_key=p.prefer_key))
    if n == 0 and not input_problems and spec.data.get("inputs"):
        problems.append(spec.problem(("inputs",), "the inputs resolve to nothing", prefer_key=True))
    return n, counts, set(seen)


def _written_inputs(spec: Spec) -> list:
    """The input entries as written, including those the schema refused."""
    entries = spec.document.get("inputs")
    return entries if isinstance(entries, list) else []


def _starved_models(spec: Spec, cells: list[Cell], problems: list[Problem]) -> None:
    """A model whose `modalities:` filter matches none of the spec's inputs would be sent nothing.

    Judged from the input entries as written (an entry that failed for another reason still
    says what it would have given), so it never follows from another mistake."""
    offered: set[str] = set()
    for entry in _written_inputs(spec):
        if not isinstance(entry, dict):
            continue
        if "from" in entry:
            offered.update([k for k in ("text", "image", "video") if k in entry] or ["image"])
        elif "beir" in entry or "imagetext" in entry:     # data sets: texts; images and captions
            offered.update(["text"] if "beir" in entry else ["image", "text"])
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


def _check_input_models(spec: Spec, cells: list[Cell], problems: list[Problem]) -> None:
    """An input's `models:` names models of this spec; one it names that the spec lacks is a typo."""
    known = {c.model.name for c in cells} | {e["name"] for e, _, _ in _model_entries(spec)}
    if not known or (not spec.intact(("models",)) and "models" in spec.document):
        return                    # the models themselves were refused: reported on their own
    for i, entry in enumerate(spec.data.get("inputs") or []):
        names = entry.get("models") if isinstance(entry, dict) else None
        for j, name in enumerate(names if isinstance(names, list) else []):
            if isinstance(name, str) and name not in known:
                problems.append(spec.problem(("inputs", i, "models", j), f"{name!r} is not a model of this spec",
                                             f"name one of: {', '.join(sorted(known))}"))


def _check_refs(spec: Spec, ids: set[str], cells: list[Cell], problems: list[Problem], matrix_ok: bool) -> None:
    """Checks name input ids; let the checks module point at unknown ones before anything runs.

    An id written in the spec counts as known even when its input failed (that failure is
    reported already); cell ids are judged only when every model entry gave its cells."""
    checks = spec.data.get("checks")
    if not checks:
        return
    try:
        from harness.spec.checkrefs import validate_check_refs
    except ImportError:
        return
    written = {e["id"] for e in _written_inputs(spec)
               if isinstance(e, dict) and "from" not in e and isinstance(e.get("id"), str)}
    # a refused model or matrix entry leaves the pools of model names and cell ids incomplete
    entries = (spec.data.get("models") or []) + ((spec.data.get("matrix") or {}).get("include") or [])
    names_known = None not in entries and ("models" in spec.data or spec.intact(("models",)))
    models = {c.model.name for c in cells} | {e["name"] for e, _, _ in _model_entries(spec)}
    cells_known = matrix_ok and all(spec.intact((key,)) for key in ("models", "dimensions", "matrix"))
    problems.extend(validate_check_refs(checks, ids | written, lambda path: spec.positions.of(("checks",) + tuple(path)),
                                        file=spec.display if spec.path else None,
                                        cell_ids=[c.id for c in cells] if cells_known else None,
                                        models=sorted(models) if names_known else None))


def build_plan(spec: Spec, *, base_url: str | None = None, catalog: Catalog | None = None,
               allow_paths: tuple | list = (), allow_hosts: tuple[str, ...] | list[str] | None = (),
               endpoints: dict[str, str] | None = None, max_payload: int | None = None,
               cell_filter: CellFilter | None = None) -> Plan:
    """Check every rule and expand the spec; raise HarnessError with all errors, in file order.

    Each stage runs on what the schema accepted, so a mistake in one part of the spec never
    hides the mistakes in another; each problem is reported once. Input files must lie in the
    spec's project or one of `allow_paths` (`--allow-path`). `allow_hosts` are the `--allow-host`
    values: with the official hosts, `base_url` and the environment's, the only hosts the spec may
    route a credential to. None skips that rule, for callers that never send (verify re-rendering
    a recorded run's payloads). `endpoints` (model name → endpoint, as a run's manifest recorded
    them) win over every other source of a DashScope endpoint, so `verify` re-plans a run sent to
    `--base-url` as it ran. `max_payload` bounds the bytes of all request bodies
    (`--max-payload-bytes`; see `max_payload_bytes`). `cell_filter` keeps a slice of the cells,
    after every rule is checked on the whole spec."""
    budget = max_payload_bytes(max_payload)
    catalog = catalog or load_catalog()
    files = InputFiles.for_spec(spec.base_dir, allow_paths, upload=bool(spec.data.get("upload_local_files")))
    allowed = None if allow_hosts is None else allowed_hosts(catalog.regions.values(), extra=allow_hosts,
                                                             base_url=base_url)
    problems: list[Problem] = list(spec.problems)
    schema_ok = not spec.problems
    cells: list[Cell] = []
    n, counts = 0, Counter()
    for debris, _ in dead_owners(Path(tempfile.gettempdir()), SPOOL):   # left by killed runs
        debris.unlink(missing_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"harness-inputs-{owner()}-", suffix=".spool")
    spool_path = Path(name)
    try:
        try:
            with os.fdopen(fd, "wb") as f:
                before = sum(p.is_error for p in problems)
                cells = build_cells(spec, catalog, problems, base_url, allowed, endpoints)
                matrix_ok = sum(p.is_error for p in problems) == before
                _check_export_host(spec, allowed, problems)
                _check_upload_region(spec, cells, problems)
                _check_export_path(spec, files, problems)
                n, counts, ids = _scan_inputs(spec, cells, problems, f, files, budget)
            _starved_models(spec, cells, problems)
            _check_input_models(spec, cells, problems)
            _check_refs(spec, ids, cells, problems, matrix_ok)
            from harness.inputs.datasets.qrels import check_qrels_files   # qrels files named by retrieval checks
            problems.extend(check_qrels_files(spec, ids, files))
        except HarnessError:
            raise
        except Exception:
            # Stages run on the valid part of the spec only; should one still trip over a refused
            # part, the schema's errors say why (a clean spec's crash is a bug and surfaces).
            if schema_ok:
                raise
        problems = list(dict.fromkeys(sorted(problems, key=Problem.sort_key)))
        if any(p.is_error for p in problems):
            raise SpecError(problems)
        if cell_filter:
            cells = cell_filter.select(cells)
    except BaseException:
        spool_path.unlink(missing_ok=True)
        raise
    max_contents = (spec.data.get("batching") or {}).get("max_contents")
    return Plan(spec, catalog, cells, n, dict(counts), problems, max_contents, spool_path, files.records())


def load_plan(path: str | Path, *, base_url: str | None = None, allow_paths: tuple | list = (),
              allow_hosts: tuple[str, ...] | list[str] = (), max_payload: int | None = None,
              cell_filter: CellFilter | None = None) -> Plan:
    return build_plan(read_spec(path), base_url=base_url, allow_paths=allow_paths, allow_hosts=allow_hosts,
                      max_payload=max_payload, cell_filter=cell_filter)
