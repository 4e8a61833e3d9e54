"""The Milvus side of an export: collections, the rows loaded into them, and why re-exports are safe.

The harness knows which model and output dimension made every vector, so it can refuse the most
common retrieval mistake — mixing models or dimensions in one index — and make re-exports
idempotent: the primary key is a hash of spec name + input id + model + dimension, so an upsert
replaces instead of duplicating. One collection per cell (model × dimension); runs of different
specs keep their own rows in it (each row carries its spec name and run digest), and a run
replaces only the rows of an earlier run of its own spec, saying how many.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import __version__
from harness.errors import HarnessError, Problem, ServiceError, UsageError
from harness.evidence import canonical_json, sha256_bytes
from harness.export.target import Target
from harness.export.vectors import MAX_ID_LENGTH, ExportCell, RunFolder
from harness.folder import layout

MAX_BATCH_BYTES = 16 << 20        # per upsert call, well under gRPC's 64 MiB message limit
PK_BATCH = 5000                   # primary keys per `pk in [...]` count query

# Collection properties that record where the vectors came from. Model and dimension are the
# collection's identity and never change; `runs` names every spec whose rows it holds (with its
# run digest); the others describe the latest export into it.
PROP_MODEL = "harness.model"
PROP_DIMENSION = "harness.dimension"
PROP_PROVIDER = "harness.provider"
PROP_CELL = "harness.cell"
PROP_SPEC_NAME = "harness.spec_name"
PROP_SPEC_SHA = "harness.spec_sha256"
PROP_VECTORS_SHA = "harness.vectors_sha256"
PROP_VERSION = "harness.version"
PROP_RUNS = "harness.runs"

FIELDS = ("pk", "spec_name", "run_digest", "input_id", "modality", "vector")
MAX_SPEC_NAME = 256


# --- names, keys, the run's identity ----------------------------------------------------------


def collection_name(cell_id: str, template: str | None = None, *, several: bool = False) -> str:
    """A Milvus-legal collection name (letters, digits, underscore; not starting with a digit).

    Default: the cell id (`qwen3-vl-embedding-1024` -> `qwen3_vl_embedding_1024`). A template
    may hold `{cell}` (`proj_{cell}`); a plain name exported with `several` cells becomes the
    prefix (`proj` -> `proj_qwen3_vl_embedding_1024`), since one collection holds one cell.
    """
    if template and several and "{cell}" not in template:
        template = f"{template}_{{cell}}"
    cell_part = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", cell_id)).strip("_")
    raw = template.replace("{cell}", cell_part) if template else cell_part
    name = re.sub(r"[^A-Za-z0-9_]", "_", raw)
    if not name or not (name[0].isalpha() or name[0] == "_"):
        name = f"c_{name}"
    return name[:255]


def collection_names(cells: list[str], template: str | None) -> dict[str, str]:
    """Each cell's collection; refused when two cells would share one (a model or dimension mix)."""
    names = {cell: collection_name(cell, template, several=len(cells) > 1) for cell in cells}
    if len(set(names.values())) < len(names):
        raise UsageError(Problem(
            f"collection name {template or '(default)'} would put {len(names)} cells (different models or "
            f"dimensions) into one collection",
            hint="give each cell its own name with {cell} (e.g. --collection 'proj_{cell}'), or choose one "
                 f"cell with --cell; cells: {', '.join(names)}"))
    return names


def primary_key(input_id: str, model: str, dimension: int, *, spec: str) -> int:
    """63-bit key from spec name + input id + model + dimension: the same input of the same spec
    re-exported lands on the same row; another spec's input of that id gets a row of its own."""
    digest = hashlib.sha256(f"{spec}\x00{model}\x00{dimension}\x00{input_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 63) - 1)


@dataclass(frozen=True)
class RunIdentity:
    """Which run rows come from: the spec's name, and a digest of the spec and inputs it ran."""

    spec: str
    digest: str

    @property
    def rows(self) -> str:
        """Milvus filter: the rows of this spec."""
        return f"spec_name == {json.dumps(self.spec)}"


def run_identity(run: RunFolder) -> RunIdentity:
    spec = run.manifest.spec or {}
    inputs = (run.manifest.inputs or {}).get("sha256")
    if not inputs and run.opened.read.has(layout.INPUTS):
        inputs = sha256_bytes(run.opened.read.raw(layout.INPUTS))
    name = str(spec.get("name") or run.path.name)[:MAX_SPEC_NAME]
    return RunIdentity(name, sha256_bytes(canonical_json({"spec": spec.get("sha256"), "inputs": inputs})))


# --- talking to Milvus --------------------------------------------------------------------


def _scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
        for part in token.split(":"):
            if len(part) >= 4:
                text = text.replace(part, "***")
    return text


@contextlib.contextmanager
def milvus_errors(what: str, target: Target, token: str | None) -> Iterator[None]:
    """Milvus failures become one clear problem (exit 4); the token never reaches the message."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as e:
        message = getattr(e, "message", None) or str(e)
        hint = "is the server running and reachable? check --to and --token" if target.kind == "milvus-server" \
            else "is another process writing to this Milvus Lite database? Milvus Lite allows one writer"
        raise ServiceError(Problem(f"Milvus {target.shown}: {what} failed: {_scrub(str(message), token)}",
                                   hint=hint)) from None


class _Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.causes: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        self.causes.append(str(exc) if exc else record.getMessage())


@contextlib.contextmanager
def _lite_log_captured() -> Iterator[_Captured]:
    """Milvus Lite logs a full traceback when it cannot open a database (e.g. another process
    holds its lock) and pymilvus then says only "Open local milvus failed"; keep the cause for
    our message and the traceback off the user's terminal."""
    log = logging.getLogger("milvus_lite")
    handler, propagate = _Captured(), log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        yield handler
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


def _lite_servers() -> dict | None:
    """milvus-lite's in-process servers by absolute path (None if it is not installed)."""
    try:
        from milvus_lite.server_manager import server_manager_instance
    except ImportError:
        return None
    return getattr(server_manager_instance, "_servers", None)


def _release_lite(target: Target) -> None:
    """Stop the in-process Milvus Lite server we started, so its file lock does not outlive the
    export (closing the client alone keeps the lock until the process exits)."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(target.uri)


def _connect(target: Target, token: str | None):
    """A client, and whether we started the Milvus Lite server behind it (then we stop it)."""
    try:
        from pymilvus import MilvusClient
    except ImportError:
        raise UsageError(Problem("exporting to Milvus needs pymilvus (and milvus-lite for a .db file)",
                                   hint="pip install 'mm-embed-harness[milvus]'")) from None
    started_here = False
    if target.kind == "milvus-lite":
        Path(target.uri).parent.mkdir(parents=True, exist_ok=True)
        servers = _lite_servers()
        started_here = servers is not None and os.path.abspath(target.uri) not in servers
    kwargs: dict[str, Any] = {"uri": target.uri, "timeout": 30}
    if token:
        kwargs["token"] = token
    with _lite_log_captured() as captured:
        try:
            with milvus_errors("connecting", target, token):
                return MilvusClient(**kwargs), started_here
        except HarnessError as e:
            if captured.causes:
                cause = _scrub(captured.causes[-1], token)
                p = e.problems[0]
                hint = p.hint
                if "lock" in cause:
                    hint = ("another process has this Milvus Lite database open (Milvus Lite allows one); "
                            "close it, or export into another .db file, or run `milvus-lite server` and use its URI")
                raise HarnessError(Problem(f"{p.message} ({cause})", hint=hint), e.exit_code) from None
            raise


@contextlib.contextmanager
def connected(target: Target, token: str | None) -> Iterator[Any]:
    """A client for the export; closed after it, with the Milvus Lite server we started stopped."""
    client, started_here = _connect(target, token)
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()
        if started_here:
            with contextlib.suppress(Exception):
                _release_lite(target)


# --- collections and their rows -----------------------------------------------------------


def _vector_dim(desc: dict[str, Any]) -> int | None:
    for f in desc.get("fields", []):
        if f.get("name") == "vector":
            dim = (f.get("params") or {}).get("dim")
            return int(dim) if dim is not None else None
    return None


def _check_compatible(name: str, desc: dict[str, Any], cv: ExportCell) -> None:
    """Refuse to mix models or dimensions in one collection (the provider's own guidance)."""
    props = desc.get("properties") or {}
    have_model, have_dim = props.get(PROP_MODEL), props.get(PROP_DIMENSION)
    if have_model is None or have_dim is None:
        raise UsageError(Problem(
            f"collection {name} exists but was not created by the harness: it does not record which model "
            f"and dimension made its vectors",
            hint="export into another collection (--collection NAME) so models and dimensions never mix"))
    field_dim = _vector_dim(desc)
    names = {f.get("name") for f in desc.get("fields", [])}
    mismatch = []
    if have_model != cv.model:
        mismatch.append("model")
    if str(have_dim) != str(cv.dimension) or (field_dim is not None and field_dim != cv.dimension):
        mismatch.append("dimension")
    if mismatch:
        raise UsageError(Problem(
            f"refused: collection {name} holds vectors of model {have_model} at dimension {field_dim or have_dim}; "
            f"cell {cv.cell} has model {cv.model} at dimension {cv.dimension} (different {' and '.join(mismatch)}). "
            f"Distances between vectors of different models or dimensions mean nothing: one model and one "
            f"dimension per index",
            hint="export into another collection (--collection NAME, or the default name per cell), "
                 "or drop the old collection first"))
    if not set(FIELDS) <= names:
        raise UsageError(Problem(
            f"collection {name} lacks the fields {', '.join(sorted(set(FIELDS) - names))}",
            hint="export into another collection (--collection NAME)"))


def _properties(cv: ExportCell, run: RunFolder, runs: dict[str, str]) -> dict[str, str]:
    spec = run.manifest.spec
    me = run_identity(run)
    return {
        PROP_RUNS: canonical_json(dict(sorted({**runs, me.spec: me.digest}.items()))).decode("utf-8"),
        PROP_MODEL: cv.model,
        PROP_DIMENSION: str(cv.dimension),
        PROP_PROVIDER: cv.provider,
        PROP_CELL: cv.cell,
        PROP_SPEC_NAME: str(spec.get("name") or ""),
        PROP_SPEC_SHA: str(spec.get("sha256") or ""),
        PROP_VECTORS_SHA: cv.sha256,
        PROP_VERSION: str(run.manifest.harness.get("version") or __version__),
    }


def _runs(desc: dict[str, Any]) -> dict[str, str]:
    """The collection's `harness.runs`: spec name -> run digest of every run whose rows it holds."""
    try:
        runs = json.loads((desc.get("properties") or {}).get(PROP_RUNS) or "{}")
    except ValueError:
        return {}
    return runs if isinstance(runs, dict) else {}


def open_collections(client, names: dict[str, str], loaded: list[ExportCell], target: Target,
                     token: str | None) -> tuple[dict[str, bool], dict[str, dict[str, str]]]:
    """Which cells' collections exist (refusing any that holds another model or dimension) and the
    runs each holds: every refusal happens before the first write."""
    existing: dict[str, bool] = {}
    runs: dict[str, dict[str, str]] = {}
    with milvus_errors("reading collections", target, token):
        for cv in loaded:
            name = names[cv.cell]
            existing[cv.cell] = client.has_collection(name)
            if existing[cv.cell]:
                desc = client.describe_collection(name)
                _check_compatible(name, desc, cv)
                runs[cv.cell] = _runs(desc)
    return existing, runs


def write(client, name: str, cv: ExportCell, run: RunFolder, me: RunIdentity, *, exists: bool,
          runs: dict[str, str]) -> tuple[int, int, int]:
    """Load one cell into its collection (created, or reopened and its properties updated).
    Returns (rows of an earlier run of this spec replaced, rows in the collection, this cell's rows found)."""
    if exists:
        state = client.get_load_state(name).get("state")
        if getattr(state, "name", str(state)) != "Loaded":
            client.load_collection(name)  # a reopened collection starts released
        client.alter_collection_properties(name, properties=_properties(cv, run, runs))
    else:
        _create(client, name, cv, run)
    replaced = _upsert(client, name, cv, me, new=not exists)
    total = _count(client, name)
    return replaced, total, _present(client, name, cv, me, total, new=not exists)


def _create(client, name: str, cv: ExportCell, run: RunFolder) -> None:
    from pymilvus import DataType, MilvusClient

    props = _properties(cv, run, {})
    description = (f"{cv.model} vectors at dimension {cv.dimension} from harness {props[PROP_VERSION]}, "
                   f"spec {props[PROP_SPEC_NAME]} sha256 {props[PROP_SPEC_SHA][:16]}")
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False, description=description)
    schema.add_field("pk", DataType.INT64, is_primary=True,
                     description="sha256(spec name, model, dimension, input id), first 63 bits")
    schema.add_field("spec_name", DataType.VARCHAR, max_length=MAX_SPEC_NAME,
                     description="the spec whose run made this vector")
    schema.add_field("run_digest", DataType.VARCHAR, max_length=64,
                     description="sha256 of that run's spec and inputs")
    schema.add_field("input_id", DataType.VARCHAR, max_length=MAX_ID_LENGTH)
    schema.add_field("modality", DataType.VARCHAR, max_length=64)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=cv.dimension)
    index = client.prepare_index_params()
    index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
    client.create_collection(name, schema=schema, index_params=index, properties=props, consistency_level="Strong")


def _upsert(client, name: str, cv: ExportCell, me: RunIdentity, *, new: bool) -> int:
    """Upsert (insert into a collection this export just created: nothing to replace there, and
    Milvus Lite inserts about 2.5x faster), drop what is left of an earlier run of the same spec,
    then flush. Returns how many rows of that earlier run were replaced; other specs' rows are
    never touched."""
    write = client.insert if new else client.upsert
    earlier = f"{me.rows} and run_digest != {json.dumps(me.digest)}"
    replaced = 0 if new else _count(client, name, earlier)
    keys = [primary_key(i, cv.model, cv.dimension, spec=me.spec) for i in cv.ids]
    batch = max(1, MAX_BATCH_BYTES // (cv.dimension * 4 + 64))
    for start in range(0, len(cv.ids), batch):
        stop = min(start + batch, len(cv.ids))
        rows = cv.vectors[start:stop].tolist()
        write(name, [
            {"pk": keys[i], "spec_name": me.spec, "run_digest": me.digest, "input_id": cv.ids[i],
             "modality": cv.modalities[i], "vector": rows[i - start]}
            for i in range(start, stop)
        ])
    if replaced:
        client.delete(name, filter=earlier)   # its inputs that this run no longer has
    client.flush(name)  # without it Milvus Lite searches unsealed segments, ~30x slower
    return replaced


def _count(client, name: str, filter: str = "") -> int:
    # Strong: a server's default (Bounded) may count before the upsert is visible
    res = client.query(name, filter=filter, output_fields=["count(*)"], consistency_level="Strong")
    return int(res[0]["count(*)"]) if res else 0


def _present(client, name: str, cv: ExportCell, me: RunIdentity, total: int, new: bool) -> int:
    """How many of this cell's rows the collection holds. A collection created by this export
    holds exactly ours, so its count(*) answers; otherwise every key is looked up."""
    if new and total == len(cv.ids):
        return total
    keys = [primary_key(i, cv.model, cv.dimension, spec=me.spec) for i in cv.ids]
    found = 0
    for start in range(0, len(keys), PK_BATCH):
        found += len(client.get(name, ids=keys[start:start + PK_BATCH], output_fields=["pk"],
                                consistency_level="Strong"))
    return found

