"""The plan's cells: one per model × dimension of the spec, with ids, filters and the matrix.

Every model entry is checked against the catalog (unknown models, parameters, dimensions),
`matrix.include` adds cells and `matrix.exclude` takes them out; an exclude that takes out
nothing is a warning. Order and ids are deterministic.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from harness.catalog.load import Catalog, ModelInfo
from harness.errors import Problem, UsageError
from harness.inputs.types import Input
from harness.plan.endpoints import cell_endpoint, replica_endpoints
from harness.providers.credentials import AllowedHosts
from harness.providers.registry import provider_class
from harness.spec.load import Spec


@dataclass
class Cell:
    id: str
    model: ModelInfo
    dimension: int                  # the vector length every input gets
    dimension_sent: int | None      # what goes in the request (None: the model's fixed size)
    parameters: dict                # the spec's, for every request of this cell (the protocol places the dimension)
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
                "dimension_sent": self.dimension_sent,
                "parameters": provider_class(self.protocol).request_parameters(self.parameters, self.dimension_sent),
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


def slug(model_name: str) -> str:
    return model_name.replace("/", "--")


@dataclass(frozen=True)
class ModelCells:
    """What every cell of one model entry shares; `cell(dimension)` makes one of them."""
    model: ModelInfo
    parameters: dict                # the spec's, for this model
    endpoint: str
    api_key_env: str | None
    required: bool
    where: tuple
    modalities: frozenset[str] | None
    upload: bool
    region: str | None
    replicas: tuple[str, ...]

    def cell(self, dimension: int) -> Cell:
        model = self.model
        return Cell(id=f"{slug(model.name)}-{dimension}", model=model, dimension=dimension,
                    dimension_sent=dimension if model.dimension_param else None,
                    parameters=dict(self.parameters), endpoint=self.endpoint, api_key_env=self.api_key_env,
                    required=self.required, where=self.where, modalities=self.modalities, upload=self.upload,
                    region=self.region, replicas=self.replicas)


class _Excludes:
    """`matrix.exclude`: whether an entry takes a cell out, and which entries took none out."""

    def __init__(self, matrix: dict):
        # entries the schema refused are None here: left out, reported by the schema
        self.entries = [(k, ex) for k, ex in enumerate(matrix.get("exclude") or []) if ex is not None]
        self.used = dict.fromkeys((k for k, _ in self.entries), False)

    def __call__(self, model: str, dim: int | None) -> bool:
        hit = False
        for k, ex in self.entries:
            if ex.get("model", model) == model and (dim is None and "dimension" not in ex
                                                    or ex.get("dimension", dim) == dim):
                self.used[k] = hit = True
        return hit


def build_cells(spec: Spec, catalog: Catalog, problems: list[Problem], base_url: str | None = None,
                allowed: AllowedHosts | None = None, endpoints: dict[str, str] | None = None) -> list[Cell]:
    """The spec's cells in order; what breaks a catalog rule goes to `problems` instead. `base_url`,
    `allowed` and `endpoints`: where the requests go (`cell_endpoint`)."""
    data = spec.data
    upload = bool(data.get("upload_local_files"))
    matrix = data.get("matrix") or {}
    excluded = _Excludes(matrix)
    global_params = data.get("parameters") or {}
    required_all = bool((data.get("execution") or {}).get("required", False))
    includes = [(k, inc) for k, inc in enumerate(matrix.get("include") or []) if inc is not None]
    entries = model_entries(spec)
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
                problems.append(spec.problem(p_path, f"{model.name} does not accept parameter {key!r} "
                                             f"(it accepts: {accepts})",
                                             "set it per model under that model's `parameters:`, or exclude the model",
                                             prefer_key=True))
        dims_spec = entry.get("dimensions", data.get("dimensions", "default"))
        dims_path = where + ("dimensions",) if "dimensions" in entry else ("dimensions",)
        if where[0] == "matrix":
            dims = []
        else:
            dims = _dims_for(model, dims_spec, dims_path, spec, problems, excluded)
        shared = ModelCells(
            model, params, cell_endpoint(model, entry, where, spec, catalog, base_url, problems, allowed, endpoints),
            api_key_env=entry.get("api_key_env"), required=bool(entry.get("required", required_all)), where=where,
            modalities=_modalities(spec, entry, where), upload=upload and model.provider == "dashscope",
            region=data.get("region", "cn-beijing") if model.provider == "dashscope" else None,
            replicas=replica_endpoints(model, entry))
        cells.extend(shared.cell(d) for d in dims if not excluded(name, d))
        for k, inc in includes:
            if inc["model"] != name:
                continue
            if inc["dimension"] not in model.dimensions:
                problems.append(spec.problem(("matrix", "include", k, "dimension"),
                                             f"{model.name} does not support output dimension {inc['dimension']} "
                                             f"(it supports: {', '.join(map(str, model.dimensions))})"))
            elif not any(c.model.name == name and c.dimension == inc["dimension"] for c in cells):
                cells.append(shared.cell(inc["dimension"]))
    for k, used in excluded.used.items():
        if not used:
            problems.append(spec.problem(("matrix", "exclude", k), "this exclude matches no cell",
                                         "check the model name and dimension", severity="warning"))
    if not cells and not any(p.is_error for p in problems):
        problems.append(spec.problem(("models",), "the matrix is empty: every cell was excluded", prefer_key=True))
    return cells


def model_entries(spec: Spec) -> list[tuple[dict, tuple, tuple]]:
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


def _modalities(spec: Spec, entry: dict, where: tuple) -> frozenset[str] | None:
    """The model's input filter (None: every input). When the schema refused part of it, only
    the valid names count, and never "all": a typo must not send the model what it was spared."""
    names = entry.get("modalities")
    if spec.intact(where + ("modalities",)):
        return frozenset(names) if names else None
    return frozenset(m for m in names or () if m is not None)
