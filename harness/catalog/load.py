"""The model catalog: what each model accepts, loaded from `models.yaml` (data, with sources).

Plans check specs against these rows instead of `if` chains, so a new model is a new row and a
disputed fact is changed in one place. The file is validated at load: a malformed row stops the
harness with the file, line, model and field, never with a traceback.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from harness.errors import ExitCode, HarnessError, Problem, SpecError
from harness.evidence import sha256_bytes

DEFAULT_PATH = Path(__file__).with_name("models.yaml")

PROVIDERS = frozenset({"dashscope", "local", "openai"})
MODALITIES = frozenset({"text", "image", "video", "multi_images"})
FUSIONS = frozenset({"none", "enable_fusion", "same_item", "always"})
PARAMETERS = frozenset({"instruct", "enable_fusion", "fps", "output_type", "res_level", "max_video_frames"})
PRICE_KEYS = frozenset({"text", "image", "video"})
_PRICE_FIELDS = frozenset({"currency", "per", "sources", "checked"}) | PRICE_KEYS
_CURRENCY_RE = re.compile(r"^[A-Z]{3}\Z")      # ISO 4217: CNY, USD

_INT_OR_NULL = (
    "max_contents", "max_images", "max_videos", "max_texts", "max_multi_images",
    "text_max_tokens", "rpm", "tpm",
)
_SIZES = ("image_max_bytes", "video_max_bytes")
_REQUIRED = (
    "provider", "regions", "modalities", "dimensions", "default_dimension", "dimension_param",
    "fusion", "parameters", *_INT_OR_NULL, *_SIZES, "image_formats", "video_formats",
    "image_tokens_estimate", "video_frames", "template_tokens", "prices", "sources", "checked", "disputes", "notes",
)
_OPTIONAL = ("wire_model",)
_SIZE_UNITS = {"B": 1, "KB": 1000, "MB": 1000 * 1000, "GB": 1000 * 1000 * 1000}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)\s*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")


@dataclass(frozen=True)
class Dispute:
    """Sources disagree on `field`; `chosen` says which value the row uses and why."""

    field: str
    note: str
    sources: tuple[str, ...]
    chosen: str


@dataclass(frozen=True)
class Price:
    """What one region bills, in its own currency: `text`/`image`/`video` per `per` input tokens."""

    currency: str                 # "CNY" | "USD" | ...
    per: int                      # tokens the amounts are for (1,000 or 1,000,000, as the source writes)
    text: float
    image: float
    video: float
    sources: tuple[str, ...]
    checked: str

    def of(self, modality: str) -> float:
        """Price of one input token of `modality`."""
        return getattr(self, modality) / self.per


@dataclass(frozen=True)
class ModelInfo:
    name: str
    provider: str                 # "dashscope" | "local" | "openai"
    wire_model: str               # name sent on the wire
    regions: tuple[str, ...]      # DashScope regions where available; () for local
    modalities: frozenset[str]
    dimensions: tuple[int, ...]   # descending
    default_dimension: int
    dimension_param: bool         # may the request carry parameters.dimension
    fusion: str                   # "none" | "enable_fusion" | "same_item" | "always"
    parameters: frozenset[str]
    max_contents: int | None      # None: no documented cap
    max_images: int | None
    max_videos: int | None
    max_texts: int | None
    max_multi_images: int | None
    image_max_bytes: int | None
    video_max_bytes: int | None
    image_formats: tuple[str, ...]  # empty: not documented / not applicable
    video_formats: tuple[str, ...]
    text_max_tokens: int | None
    image_tokens_estimate: int
    video_frames: int             # frames a video is sampled to by default (each costs an image)
    template_tokens: int          # prompt-template tokens billed as text per vector (qwen-vl)
    rpm: int | None
    tpm: int | None
    prices: Mapping[str, Price]   # region -> what it bills; empty: nothing is billed (self-hosted)
    sources: tuple[str, ...]
    checked: str
    disputes: tuple[Dispute, ...]
    notes: str

    def price(self, region: str | None) -> Price | None:
        """What `region` bills for this model; None when nothing is billed there (self-hosted)."""
        return self.prices.get(region) if region else None

    def dispute(self, field_name: str) -> Dispute | None:
        """The dispute recorded for a field, so messages can say a limit is contested."""
        return next((d for d in self.disputes if d.field == field_name), None)


@dataclass(frozen=True)
class Catalog:
    version: str
    sha256: str                   # of the models.yaml bytes, recorded in every manifest
    path: Path
    regions: Mapping[str, str]    # region id -> native API base URL
    embedding_path: str
    sources: Mapping[str, str]    # source key -> where it was read
    models: Mapping[str, ModelInfo] = field(repr=False)

    def get(self, name: str) -> ModelInfo | None:
        return self.models.get(name)

    def names(self) -> list[str]:
        return list(self.models)

    def suggest(self, name: str) -> list[str]:
        """Close model names, for a "did you mean" hint."""
        return difflib.get_close_matches(name, self.names(), n=3, cutoff=0.6)

    def endpoint(self, region: str) -> str:
        """The full multimodal-embedding URL for a region; HarnessError for an unknown region."""
        base = self.regions.get(region)
        if base is None:
            raise SpecError(Problem(
                f"unknown region {region!r}",
                hint="known regions: " + ", ".join(sorted(self.regions)),
            ))
        return base.rstrip("/") + self.embedding_path


def load_catalog(path: Path | None = None) -> Catalog:
    """Load and validate a catalog; the shipped one is read once per process."""
    if path is None:
        return _load_default()
    return _load(Path(path), ExitCode.SPEC_INVALID)


@functools.lru_cache(maxsize=1)
def _load_default() -> Catalog:
    # A broken shipped catalog is a harness bug, not the user's mistake.
    return _load(DEFAULT_PATH, ExitCode.INTERNAL)


def _load(path: Path, exit_code: ExitCode) -> Catalog:
    fname = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HarnessError(Problem(f"cannot read the model catalog: {exc.strerror}", file=fname), exit_code)
    text = raw.decode("utf-8", errors="replace")
    try:
        node, data = _parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise HarnessError(Problem(
            f"the model catalog is not valid YAML: {getattr(exc, 'problem', None) or exc}",
            file=fname, line=mark.line + 1 if mark else None, col=mark.column + 1 if mark else None,
        ), exit_code)

    lines, problems = _positions(node, fname)

    def err(message: str, model: str | None = None, key: str | None = None, hint: str | None = None) -> None:
        line = lines.get((model, key)) or lines.get((model, None)) or lines.get((None, key))
        problems.append(Problem(message, file=fname, line=line, hint=hint))

    if not isinstance(data, dict):
        raise HarnessError(Problem("the model catalog must be a mapping", file=fname, line=1), exit_code)
    for key in ("catalog_version", "regions", "embedding_path", "sources", "models"):
        if key not in data:
            err(f"missing top-level key {key!r}", key=key)
    regions = data.get("regions") or {}
    sources = data.get("sources") or {}
    rows = data.get("models") or {}
    if not isinstance(regions, dict) or not isinstance(sources, dict) or not isinstance(rows, dict):
        err("'regions', 'sources' and 'models' must be mappings")
        raise HarnessError(problems, exit_code)

    models: dict[str, ModelInfo] = {}
    for name, row in rows.items():
        name = str(name)
        found: list[str] = []
        model = _row(name, row, set(regions), set(sources), found)
        for message in found:
            key, _, rest = message.partition(": ")
            where = f"model {name!r}" if key == "-" else f"model {name!r}, field {key!r}"
            err(f"{where}: {rest}", model=name, key=key)
        if model is not None and not found:
            models[name] = model

    if problems:
        raise HarnessError(problems, exit_code)
    return Catalog(
        version=str(data["catalog_version"]),
        sha256=sha256_bytes(raw),
        path=path,
        regions=MappingProxyType({str(k): str(v) for k, v in regions.items()}),
        embedding_path=str(data["embedding_path"]),
        sources=MappingProxyType({str(k): str(v) for k, v in sources.items()}),
        models=MappingProxyType(models),
    )


def _parse(text: str) -> tuple[Any, Any]:
    """The catalog's node graph (for lines) and its values, from one parse: libyaml's when
    PyYAML has it; the pure-Python parser otherwise and to word an error."""
    if getattr(yaml, "CSafeLoader", None) is not None:
        try:
            return _parse_with(yaml.CSafeLoader, text)
        except yaml.YAMLError:
            pass
    return _parse_with(yaml.SafeLoader, text)


def _parse_with(loader_class, text: str) -> tuple[Any, Any]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    finally:
        loader.dispose()


def _positions(node: Any, fname: str) -> tuple[dict, list[Problem]]:
    """Line of each model and each (model, field); duplicate model names are problems."""
    lines: dict[tuple[str | None, str | None], int] = {}
    problems: list[Problem] = []
    if not isinstance(node, yaml.MappingNode):
        return lines, problems
    for k, v in node.value:
        lines[(None, k.value)] = k.start_mark.line + 1
        if k.value != "models" or not isinstance(v, yaml.MappingNode):
            continue
        for mk, mv in v.value:
            if (mk.value, None) in lines:
                problems.append(Problem(f"model {mk.value!r} is listed twice", file=fname,
                                        line=mk.start_mark.line + 1, hint="keep one row per model"))
            lines[(mk.value, None)] = mk.start_mark.line + 1
            if isinstance(mv, yaml.MappingNode):
                for fk, _ in mv.value:
                    lines[(mk.value, fk.value)] = fk.start_mark.line + 1
    return lines, problems


def _row(name: str, row: Any, regions: set[str], sources: set[str], out: list[str]) -> ModelInfo | None:
    """Check one row; each problem is appended as 'field: message'."""
    if not isinstance(row, dict):
        out.append("-: the row must be a mapping of fields")
        return None
    for key in _REQUIRED:
        if key not in row:
            out.append(f"{key}: is missing (every row states it; use null or [] when it does not apply)")
    for key in row:
        if key not in _REQUIRED and key not in _OPTIONAL:
            close = difflib.get_close_matches(str(key), _REQUIRED + _OPTIONAL, n=1)
            out.append(f"{key}: unknown field" + (f" (did you mean {close[0]!r}?)" if close else ""))
    if out:
        return None

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def names(key: str, allowed: frozenset[str] | set[str] | None) -> tuple[str, ...]:
        v = row[key]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            out.append(f"{key}: must be a list of names")
            return ()
        bad = [x for x in v if allowed is not None and x not in allowed]
        if bad:
            out.append(f"{key}: unknown {', '.join(map(repr, bad))}; known: {', '.join(sorted(allowed or ()))}")
        return tuple(v)

    provider = row["provider"]
    if provider not in PROVIDERS:
        out.append(f"provider: {provider!r} is not one of {', '.join(sorted(PROVIDERS))}")
    region_list = names("regions", regions)
    if provider == "dashscope" and not region_list:
        out.append("regions: a dashscope model needs at least one region")
    modalities = names("modalities", MODALITIES)
    parameters = names("parameters", PARAMETERS)
    source_list = names("sources", sources)
    if not source_list:
        out.append("sources: at least one source key is required")
    image_formats = tuple(x.lower() for x in names("image_formats", None))
    video_formats = tuple(x.lower() for x in names("video_formats", None))

    dims = row["dimensions"]
    if not isinstance(dims, list) or not dims or not all(is_int(d) and d > 0 for d in dims):
        out.append("dimensions: must be a non-empty list of positive integers")
        dims = []
    default = row["default_dimension"]
    if dims and default not in dims:
        out.append(f"default_dimension: {default!r} is not among dimensions {dims}")
    if not isinstance(row["dimension_param"], bool):
        out.append("dimension_param: must be true or false")
    if row["fusion"] not in FUSIONS:
        out.append(f"fusion: {row['fusion']!r} is not one of {', '.join(sorted(FUSIONS))}")
    for key in _INT_OR_NULL:
        if row[key] is not None and not (is_int(row[key]) and row[key] >= 0):
            out.append(f"{key}: must be a non-negative integer or null")
    for key in ("image_tokens_estimate", "video_frames", "template_tokens"):
        if not (is_int(row[key]) and row[key] >= 0):
            out.append(f"{key}: must be a non-negative integer")
    sizes = {}
    for key in _SIZES:
        sizes[key] = _size(row[key])
        if sizes[key] == -1:
            out.append(f"{key}: {row[key]!r} is not a size; write e.g. '5 MB' (read as 5,000,000 bytes) or null")
    prices = _prices(row["prices"], region_list, sources, out)
    if provider == "dashscope":
        for region in region_list:
            if region not in prices:
                out.append(f"prices: no price for region {region!r} (give its currency, per, text, image, video, "
                           "sources and checked)")
    checked = row["checked"]
    if not (isinstance(checked, str) and _DATE_RE.match(checked)):
        out.append("checked: must be a quoted date 'YYYY-MM-DD'")
    disputes = []
    if not isinstance(row["disputes"], list):
        out.append("disputes: must be a list (use [] when the sources agree)")
    else:
        for i, d in enumerate(row["disputes"]):
            if not isinstance(d, dict) or not all(isinstance(d.get(k), str) for k in ("field", "note", "chosen")) \
                    or not isinstance(d.get("sources"), list) or not d["sources"]:
                out.append(f"disputes: entry {i + 1} needs field, note, sources (a list) and chosen")
                continue
            unknown = [s for s in d["sources"] if s not in sources]
            if unknown:
                out.append(f"disputes: entry {i + 1} cites unknown source {', '.join(map(repr, unknown))}")
            disputes.append(Dispute(d["field"], d["note"], tuple(map(str, d["sources"])), d["chosen"]))
    wire = row.get("wire_model", name)
    if not isinstance(wire, str) or not wire:
        out.append("wire_model: must be a non-empty string")
    if out:
        return None
    return ModelInfo(
        name=name, provider=provider, wire_model=wire, regions=region_list,
        modalities=frozenset(modalities), dimensions=tuple(sorted(set(dims), reverse=True)),
        default_dimension=default, dimension_param=row["dimension_param"], fusion=row["fusion"],
        parameters=frozenset(parameters),
        max_contents=row["max_contents"], max_images=row["max_images"], max_videos=row["max_videos"],
        max_texts=row["max_texts"], max_multi_images=row["max_multi_images"],
        image_max_bytes=sizes["image_max_bytes"], video_max_bytes=sizes["video_max_bytes"],
        image_formats=image_formats, video_formats=video_formats,
        text_max_tokens=row["text_max_tokens"],
        image_tokens_estimate=row["image_tokens_estimate"], video_frames=row["video_frames"],
        template_tokens=row["template_tokens"], rpm=row["rpm"], tpm=row["tpm"],
        prices=MappingProxyType(prices),
        sources=source_list, checked=checked, disputes=tuple(disputes), notes=str(row["notes"] or ""),
    )


def _prices(value: Any, regions: tuple[str, ...], sources: set[str], out: list[str]) -> dict[str, Price]:
    """region -> Price; each problem appended as 'prices: message'."""
    if not isinstance(value, dict):
        out.append("prices: must map each region to its price ({} when nothing is billed)")
        return {}
    found: dict[str, Price] = {}
    for region, p in value.items():
        where = f"prices: region {region!r}"
        if region not in regions:
            out.append(f"{where} is not among the row's regions ({', '.join(regions) or 'none'})")
            continue
        if not isinstance(p, dict) or set(p) != _PRICE_FIELDS:
            out.append(f"{where} needs exactly {', '.join(sorted(_PRICE_FIELDS))}")
            continue
        amounts = [p[k] for k in sorted(PRICE_KEYS)]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in amounts):
            out.append(f"{where}: text, image and video must be non-negative numbers")
        elif not (isinstance(p["currency"], str) and _CURRENCY_RE.match(p["currency"])):
            out.append(f"{where}: currency must be a 3-letter code such as CNY or USD")
        elif not (isinstance(p["per"], int) and not isinstance(p["per"], bool) and p["per"] > 0):
            out.append(f"{where}: per must be the positive number of tokens the amounts are for")
        elif not (isinstance(p["sources"], list) and p["sources"] and all(s in sources for s in p["sources"])):
            out.append(f"{where}: sources must list known source keys")
        elif not (isinstance(p["checked"], str) and _DATE_RE.match(p["checked"])):
            out.append(f"{where}: checked must be a quoted date 'YYYY-MM-DD'")
        else:
            found[region] = Price(p["currency"], p["per"], *(float(p[k]) for k in ("text", "image", "video")),
                                  tuple(p["sources"]), p["checked"])
    return found


def _size(value: Any) -> int | None:
    """'5 MB' -> 5,000,000 (the smaller reading of MB, so a limit is never overstated); -1 if invalid."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = _SIZE_RE.match(value) if isinstance(value, str) else None
    if not m:
        return -1
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
