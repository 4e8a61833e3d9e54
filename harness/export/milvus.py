"""Load an executed run's vectors into Milvus (Lite or a server) and prove the index answers.

The harness knows which model and output dimension made every vector, so it can refuse the most
common retrieval mistake — mixing models or dimensions in one index — and make re-exports
idempotent: the primary key is a hash of spec name + input id + model + dimension, so an upsert
replaces instead of duplicating. One collection per cell (model × dimension); runs of different
specs keep their own rows in it (each row carries its spec name and run digest), and a run
replaces only the rows of an earlier run of its own spec, saying how many.

A file path (``vectors.db``) means embedded Milvus Lite; ``http(s)://host:port`` a Milvus
standalone server or cluster. The same pymilvus code serves both; only the URI changes.

`export_run` writes ``export.json`` into the output folder and returns `CheckResult`s; it leaves
``validate.txt``, the reports and ``manifest.json`` to `harness.folder.finalize`, called by the
runner or, for the standalone command, by `export_folder`, which first refuses a folder that does
not verify (finalising re-hashes the folder, which would bless edits made to it).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from harness import __version__
from harness.errors import HarnessError, MismatchError, Problem, ServiceError, UsageError
from harness.evidence import COMMITTED, atomic_write, canonical_json, sha256_bytes, sha256_file, signals_held
from harness.folder import FolderError, Manifest, RunReader, finalize, layout
from harness.folder.verdict import CheckResult

EXPORT_FILE = layout.EXPORT
EXPORT_VERSION = 1
DEFAULT_TOP_K = 5
MAX_TOP_K = 16384                 # Milvus' own limit on `limit`
MAX_DEFAULT_QUERIES = 20          # default queries: the run's text inputs, capped
MAX_ID_LENGTH = 1024              # VARCHAR length of the input_id field (bytes)
MAX_BATCH_BYTES = 16 << 20        # per upsert call, well under gRPC's 64 MiB message limit
PK_BATCH = 5000                   # primary keys per `pk in [...]` count query
SELF_TIE = 1e-5                   # a duplicate input may tie its twin at rank 1
SMOKE_PASS = 0.9                  # share of queries that must find themselves first (ANN may miss one)
LITE_EF = 128                     # HNSW ef for Milvus Lite's smoke search (its default 64 missed ~2%)
MIN_SELF_SCORE = 0.999            # cosine of a vector with its own stored copy

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

HINT_RUN = "run `harness run SPEC --execute` first; `harness export` loads the vectors an executed run wrote"


# --- reading an executed output folder ------------------------------------------------------


@dataclass(frozen=True)
class ExportCell:
    """One cell's vectors as the run wrote them (rows in input order), with what the collection
    records about them: model, provider, each input's modality, the file's sha256."""

    cell: str
    model: str
    provider: str
    dimension: int
    ids: list[str]
    modalities: list[str]
    vectors: np.ndarray            # float32, shape (len(ids), dimension)
    sha256: str                    # of vectors/<cell>.npy


@dataclass
class RunFolder:
    """What `export` needs from an output folder, checked before anything is loaded anywhere."""

    path: Path
    manifest: Manifest
    modality: dict[str, str]                     # input id -> modality
    input_order: list[str]
    not_executed: dict[str, str] = field(default_factory=dict)  # cell id -> reason

    @property
    def cells(self) -> list[dict[str, Any]]:
        return self.manifest.cells

    @property
    def cell_ids(self) -> list[str]:
        return self.manifest.cell_ids

    @property
    def executed_cells(self) -> list[str]:
        return [c for c in self.cell_ids if c not in self.not_executed]


def _damaged(exc: FolderError, folder: Path) -> HarnessError:
    return MismatchError(Problem(f"{folder}: {exc}", hint="the output folder is damaged; run `harness verify` on it "
                                "or run the spec again"))


def read_run(folder: str | os.PathLike, manifest: Manifest | None = None) -> RunFolder:
    """Open an output folder and find which cells were executed; no vectors are read yet.

    `manifest` stands in for manifest.json while the runner is still building the folder
    (it exports before `finalize` writes the manifest)."""
    path = Path(folder)
    if not path.exists():
        raise UsageError(Problem(f"output folder {path} does not exist", hint=HINT_RUN))
    if not path.is_dir():
        raise UsageError(Problem(f"{path} is not a folder", hint="pass the run's output folder, e.g. output/<spec name>"))
    reader = RunReader(path)
    if manifest is None and not reader.has(layout.MANIFEST):
        raise UsageError(
            Problem(f"{path} is not a harness output folder (no manifest.json)",
                    hint="pass the folder `harness run` wrote, e.g. output/<spec name>"),
        )
    try:
        manifest = manifest or reader.manifest()
        inputs = reader.inputs()
        execution = reader.execution()
    except FolderError as exc:
        raise _damaged(exc, path) from None
    modality = {row["id"]: str(row.get("modality") or "unknown") for row in inputs}
    reasons = {c.id: c.reason or "not executed" for c in (execution.cells if execution else []) if not c.executed}
    not_executed = {}
    for cid in manifest.cell_ids:
        if not reader.has(layout.vectors_file(cid)) or not reader.has(layout.ids_file(cid)):
            not_executed[cid] = reasons.get(cid) or ("no vectors file" if execution else
                                                     "not executed: the run had no --execute")
        elif cid in reasons:
            not_executed[cid] = reasons[cid]
    return RunFolder(path=path, manifest=manifest, modality=modality, input_order=[row["id"] for row in inputs],
                     not_executed=not_executed)


_STAGED = re.compile(r"^\.(.+)\.staging-")  # evidence.StagedFolder's naming


def load_cell(run: RunFolder, cell_id: str) -> ExportCell:
    """Read one cell's vectors and ids, checked against the manifest (shape, dimension, hashes)."""
    cell = run.manifest.cell(cell_id)
    vpath = run.path / layout.vectors_file(cell_id)
    ipath = run.path / layout.ids_file(cell_id)

    def damaged(message: str, file: Path, hint: str = "run `harness verify` on the folder, or run the spec again"):
        return MismatchError(Problem(message, file=str(file), hint=hint))

    recorded = run.manifest.files
    for p in (vpath, ipath):
        rel = p.relative_to(run.path).as_posix()
        if rel in recorded and recorded[rel] != sha256_file(p):
            raise damaged(f"{rel} changed since the run (its sha256 differs from manifest.json)", p)
    try:
        loaded = RunReader(run.path).vectors(cell_id)
    except FolderError as e:
        raise damaged(str(e), vpath) from None
    if loaded is None:
        raise damaged("no vectors file", vpath)
    ids, vectors = loaded.ids, loaded.matrix
    dimension = int(cell.get("dimension") or 0)
    if dimension and vectors.shape[1] != dimension:
        raise damaged(f"vectors have {vectors.shape[1]} dimensions but manifest.json says cell {cell_id} has {dimension}",
                      vpath)
    if len(set(ids)) != len(ids):
        raise damaged("input ids repeat; each input must have exactly one vector per cell", ipath)
    too_long = [i for i in ids if len(i.encode("utf-8")) > MAX_ID_LENGTH]
    if too_long:
        raise damaged(f"input id {too_long[0][:40]!r}... is longer than {MAX_ID_LENGTH} bytes", ipath,
                      hint="shorten the input ids in the spec")
    if run.modality:
        unknown = [i for i in ids if i not in run.modality]
        if unknown:
            raise damaged(f"input id {unknown[0]!r} is not in inputs.jsonl", ipath)
    if not np.all(np.isfinite(vectors)):
        raise damaged("vectors contain NaN or infinity", vpath)
    return ExportCell(
        cell=cell_id,
        model=str(cell.get("model") or cell_id),
        provider=str(cell.get("provider") or ""),
        dimension=int(vectors.shape[1]),
        ids=ids,
        modalities=[run.modality.get(i, "unknown") for i in ids],
        vectors=np.ascontiguousarray(vectors, dtype=np.float32),
        sha256=sha256_file(vpath),
    )


# --- names, keys, targets -----------------------------------------------------------------


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


def primary_key(input_id: str, model: str, dimension: int, *, spec: str) -> int:
    """63-bit key from spec name + input id + model + dimension: the same input of the same spec
    re-exported lands on the same row; another spec's input of that id gets a row of its own."""
    digest = hashlib.sha256(f"{spec}\x00{model}\x00{dimension}\x00{input_id}".encode("utf-8")).digest()
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
    if not inputs and (run.path / "inputs.jsonl").is_file():
        inputs = sha256_file(run.path / "inputs.jsonl")
    name = str(spec.get("name") or run.path.name)[:MAX_SPEC_NAME]
    return RunIdentity(name, sha256_bytes(canonical_json({"spec": spec.get("sha256"), "inputs": inputs})))


@dataclass(frozen=True)
class Target:
    uri: str            # what pymilvus gets
    shown: str          # what files, logs and messages get (credentials removed)
    kind: str           # "milvus-lite" | "milvus-server"


_SERVER_SCHEMES = ("http", "https", "tcp", "grpc", "unix")


def _redact_uri(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=f"***@{host}")
    return urlunsplit(parts)


def resolve_target(to: str, folder: Path | None = None) -> Target:
    """A file path means Milvus Lite (it must end in .db); http(s)://host:port a Milvus server."""
    if not to or not to.strip():
        raise UsageError(Problem("--to is empty", hint="give a Milvus Lite file (vectors.db) or http://host:19530"))
    scheme = to.split("://", 1)[0].lower() if "://" in to else ""
    if scheme:
        if scheme not in _SERVER_SCHEMES:
            raise UsageError(Problem(f"unknown Milvus URI scheme {scheme!r} in --to",
                                       hint="use a file path ending in .db for Milvus Lite, or http(s)://host:19530"))
        return Target(uri=to, shown=_redact_uri(to), kind="milvus-server")
    path = Path(to).expanduser()
    if path.suffix != ".db":
        raise UsageError(Problem(f"Milvus Lite database path {to!r} must end in .db",
                                   hint="e.g. --to vectors.db; for a server use http://host:19530"))
    if path.exists() and path.is_file():
        raise UsageError(Problem(f"{to} is a file, not a Milvus Lite database (those are folders)",
                                   hint="choose another path ending in .db"))
    resolved = path.resolve()
    if folder is not None:
        roots = [Path(folder).resolve()]
        staged = _STAGED.match(roots[0].name)
        if staged:
            roots.append(roots[0].parent / staged.group(1))  # it replaces this folder on commit
        if any(resolved == root or root in resolved.parents for root in roots):
            raise UsageError(Problem(f"{to} is inside the output folder {folder}",
                                       hint="put the database outside it; every file in the output folder is "
                                            "hashed into manifest.json and a live database would break `harness verify`"))
    return Target(uri=str(resolved), shown=to, kind="milvus-lite")


def token_from_env(var: str) -> str:
    """The token named by a spec's `token_env` / `--token-env`; the value is never shown."""
    value = os.environ.get(var)
    if not value:
        raise UsageError(Problem(f"environment variable {var} is not set (it should hold the Milvus token)",
                                   hint=f"export {var}=user:password (or an API key), or drop --token-env for "
                                        "a server without authentication"))
    return value


# --- talking to Milvus --------------------------------------------------------------------


def _scrub(text: str, token: str | None) -> str:
    if token:
        text = text.replace(token, "***")
        for part in token.split(":"):
            if len(part) >= 4:
                text = text.replace(part, "***")
    return text


@contextlib.contextmanager
def _milvus_errors(what: str, target: Target, token: str | None) -> Iterator[None]:
    """Milvus failures become one clear problem (exit 4); the token never reaches the message."""
    from pymilvus.exceptions import MilvusException

    try:
        yield
    except MilvusException as e:
        message = getattr(e, "message", None) or str(e)
        hint = "is the server running and reachable? check --to and --token" if target.kind == "milvus-server" \
            else "is another process writing to this Milvus Lite database? Milvus Lite allows one writer"
        raise ServiceError(Problem(f"Milvus {target.shown}: {what} failed: {_scrub(str(message), token)}", hint=hint)) from None


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
            with _milvus_errors("connecting", target, token):
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


def _smoke_search(client, name: str, cv: ExportCell, queries: list[str], top_k: int,
                  lite: bool, me: RunIdentity | None = None) -> list[dict[str, Any]]:
    """Search each query input's own vector among this spec's rows; it should come back first
    (its twin may tie). Other specs' rows may reuse the input ids, so they are left out.

    On Milvus Lite the HNSW `ef` is raised (random 1024-d vectors: 98% self-recall at its default
    64, 100% at 128); a server's AUTOINDEX takes other knobs, so it keeps its own defaults."""
    if not queries:
        return []
    row = {i: n for n, i in enumerate(cv.ids)}
    data = [cv.vectors[row[q]].tolist() for q in queries]
    params: dict[str, Any] = {"metric_type": "COSINE"}
    if lite:
        params["params"] = {"ef": max(LITE_EF, top_k)}
    hits = client.search(name, data=data, limit=top_k, output_fields=["input_id"], filter=me.rows if me else "",
                         search_params=params, consistency_level="Strong")
    out = []
    for q, found in zip(queries, hits):
        ranked = [{"id": h["entity"]["input_id"], "score": round(float(h["distance"]), 6)} for h in found]
        rank = next((n for n, h in enumerate(ranked, 1) if h["id"] == q), None)
        self_score = ranked[rank - 1]["score"] if rank else None
        top = ranked[0]["score"] if ranked else None
        tied_first = rank is not None and top is not None and self_score >= top - SELF_TIE
        ok = tied_first and self_score >= MIN_SELF_SCORE
        out.append({"query": q, "rank": rank, "self_score": self_score, "ok": bool(ok), "hits": ranked})
    return out


# --- the entry point ----------------------------------------------------------------------


def _select_cells(run: RunFolder, cells: list[str] | None) -> tuple[list[str], list[str]]:
    """(cells to export, cells skipped because they were not executed)."""
    if cells:
        unknown = [c for c in cells if c not in run.cell_ids]
        if unknown:
            raise UsageError(Problem(f"cell {unknown[0]} is not in this run",
                                       hint=f"its cells are: {', '.join(run.cell_ids)}"))
        missing = [c for c in cells if c in run.not_executed]
        if missing:
            raise UsageError(Problem(f"cell {missing[0]} has no vectors ({run.not_executed[missing[0]]})",
                                       hint=HINT_RUN))
        return list(dict.fromkeys(cells)), []
    chosen = run.executed_cells
    if not chosen:
        raise UsageError(Problem(f"{run.path} has no vectors: the run was planned but not executed",
                                   hint=HINT_RUN))
    return chosen, [c for c in run.cell_ids if c in run.not_executed]


def _select_queries(run: RunFolder, loaded: list[ExportCell], queries: list[str] | None) -> list[str]:
    """Explicit queries must be inputs of the run; the default is its text inputs, capped."""
    order = run.input_order or list(dict.fromkeys(i for cv in loaded for i in cv.ids))
    if queries:
        known = set(order)
        unknown = [q for q in queries if q not in known]
        if unknown:
            raise UsageError(Problem(f"query {unknown[0]!r} is not an input of this run",
                                       hint="queries name input ids from the spec (see inputs.jsonl)"))
        return list(dict.fromkeys(queries))
    modality = run.modality or {i: m for cv in loaded for i, m in zip(cv.ids, cv.modalities)}
    texts = [i for i in order if modality.get(i) == "text"]
    return (texts or order)[:MAX_DEFAULT_QUERIES]


def _export(
    folder: Path,
    *,
    to: str,
    collection: str | None = None,
    token: str | None = None,
    top_k: int = DEFAULT_TOP_K,
    queries: list[str] | None = None,
    cells: list[str] | None = None,
    manifest: Manifest | None = None,
) -> tuple[list[CheckResult], dict]:
    """Upsert every executed cell's vectors into its own collection, count, smoke-search.
    Returns the results and the record for `export.json` (written by the caller).

    Does not touch `validate.txt` or `manifest.json` (the
    caller folds the returned results in). Raises `HarnessError` before anything is written
    anywhere for a folder that was not executed, a bad target, or a collection that holds
    another model or dimension (exit 2); for Milvus failing midway (exit 4) already loaded
    cells stay, and exporting again upserts the same rows. `manifest` lets the runner export
    before manifest.json exists.
    """
    folder = Path(folder)
    if not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise UsageError(Problem(f"top_k must be between 1 and {MAX_TOP_K}, not {top_k!r}"))
    run = read_run(folder, manifest)
    chosen, skipped = _select_cells(run, cells)
    target = resolve_target(to, folder)

    loaded = [load_cell(run, cid) for cid in chosen]
    empty = [cv.cell for cv in loaded if not cv.ids]
    loaded = [cv for cv in loaded if cv.ids]
    if not loaded:
        raise UsageError(Problem(f"{run.path} has no vectors: every request of the run failed",
                                   hint="see execution.json, then run the spec again"))
    picked = _select_queries(run, loaded, queries)

    names = {cv.cell: collection_name(cv.cell, collection, several=len(loaded) > 1) for cv in loaded}
    if len(set(names.values())) < len(names):
        raise UsageError(Problem(
            f"collection name {collection or '(default)'} would put {len(names)} cells (different models or "
            f"dimensions) into one collection",
            hint="give each cell its own name with {cell} (e.g. --collection 'proj_{cell}'), or choose one "
                 f"cell with --cell; cells: {', '.join(names)}"))

    client, started_here = _connect(target, token)
    try:
        me = run_identity(run)
        existing: dict[str, bool] = {}
        runs: dict[str, dict[str, str]] = {}
        with _milvus_errors("reading collections", target, token):
            for cv in loaded:  # every refusal happens before the first write
                name = names[cv.cell]
                existing[cv.cell] = client.has_collection(name)
                if existing[cv.cell]:
                    desc = client.describe_collection(name)
                    _check_compatible(name, desc, cv)
                    runs[cv.cell] = _runs(desc)

        report: list[dict[str, Any]] = []
        results: list[CheckResult] = []
        for cv in loaded:
            name = names[cv.cell]
            with _milvus_errors(f"loading {cv.cell} into {name}", target, token):
                if existing[cv.cell]:
                    state = client.get_load_state(name).get("state")
                    if getattr(state, "name", str(state)) != "Loaded":
                        client.load_collection(name)  # a reopened collection starts released
                    client.alter_collection_properties(name, properties=_properties(cv, run, runs[cv.cell]))
                else:
                    _create(client, name, cv, run)
                replaced = _upsert(client, name, cv, me, new=not existing[cv.cell])
                total = _count(client, name)
                present = _present(client, name, cv, me, total, new=not existing[cv.cell])
                present_ids = set(cv.ids)
                searched = _smoke_search(client, name, cv, [q for q in picked if q in present_ids], top_k,
                                         lite=target.kind == "milvus-lite", me=me)
            n = len(cv.ids)
            good = sum(1 for s in searched if s["ok"])
            report.append({
                "cell": cv.cell, "collection": name, "created": not existing[cv.cell],
                "model": cv.model, "dimension": cv.dimension, "vectors": n, "present": present,
                "collection_count": total, "vectors_sha256": cv.sha256, "searches": searched,
                "spec_name": me.spec, "run_digest": me.digest, "replaced_earlier_run": replaced,
            })
            others = f"; the collection holds {total} in all" if total != n else ""
            if replaced:
                others += f"; replaced {replaced} rows of an earlier run of spec {me.spec}"
            results.append(CheckResult(
                name="export", cell=cv.cell, kind="export", passed=present == n,
                detail=(f"{n} vectors in collection {name} (model {cv.model}, dimension {cv.dimension})"
                        + (others if present == n else f"; only {present} of {n} found by primary key")),
                data={"collection": name, "vectors": n, "present": present, "collection_count": total},
            ))
            misses = [s["query"] for s in searched if not s["ok"]]
            absent = len(picked) - len(searched)
            results.append(CheckResult(
                name="export:search", cell=cv.cell, kind="export",
                passed=bool(searched) and good >= SMOKE_PASS * len(searched),
                detail=(f"{good}/{len(searched)} queries find themselves at rank 1 of top-{top_k}"
                        + (f"; missed: {', '.join(misses[:5])}" if misses else "")
                        + (" (an approximate index may miss a few; at least "
                           f"{SMOKE_PASS:.0%} must be found)" if misses else "")
                        + (f"; {absent} queries have no vector in this cell" if absent else "")),
                data={"queries": len(searched), "found": good, "top_k": top_k},
            ))
            report[-1]["queries_without_vector"] = [q for q in picked if q not in present_ids]
    finally:
        with contextlib.suppress(Exception):
            client.close()
        if started_here:
            with contextlib.suppress(Exception):
                _release_lite(target)

    for cid in skipped:
        results.append(CheckResult.skip("export", f"not executed ({run.not_executed[cid]})", cid, "export"))
    for cid in empty:
        results.append(CheckResult.skip("export", "no vectors came back for this cell", cid, "export"))
    return results, {
        "export_version": EXPORT_VERSION,
        "target": {"uri": target.shown, "kind": target.kind},
        "top_k": top_k,
        "queries": picked,
        "collections": report,
        "skipped": {**{cid: run.not_executed[cid] for cid in skipped},
                    **{cid: "no vectors came back" for cid in empty}},
    }


def export_run(folder: Path, **options: Any) -> list[CheckResult]:
    """Export `folder`'s executed cells (see `_export` for the options) and write `export.json`
    into it; validate.txt and manifest.json are the caller's (the runner's `finalize`)."""
    results, record = _export(folder, **options)
    atomic_write(Path(folder) / EXPORT_FILE, canonical_json(record, pretty=True))
    return results


# --- the standalone `harness export`: verify, export, finalize ------------------------------


def check_verifies(folder: Path) -> None:
    """Refuse a folder that does not verify: finalising it would hash its edits into evidence."""
    from harness.audit.verify import verify_folder

    report = verify_folder(folder)
    if not report.ok:
        problems = [Problem(f"{folder} does not verify, so it is not exported: {f.path}: {f.message}",
                            hint="run `harness verify` on it, then run the spec again")
                    for f in report.sorted_findings() if f.mismatch or report.strict]
        raise MismatchError(problems)


def finish_export(folder: Path, results: list[CheckResult]) -> list[CheckResult]:
    """Fold export results into the folder's evidence: earlier export results are replaced, then
    `finalize` writes validate.txt, every report and the manifest from the whole list. Returns it."""
    folder = Path(folder)
    reader = RunReader(folder)
    try:
        manifest, earlier = reader.manifest(), reader.results()
    except FolderError as exc:
        raise _damaged(exc, folder) from None
    every = [r for r in earlier if r.kind != "export"] + list(results)
    finalize(folder, manifest, every)
    return every


def export_folder(folder: Path, **options: Any) -> tuple[list[CheckResult], list[CheckResult]]:
    """`harness export`: verify the folder, export it (`export_run` options), finalize it.
    Returns (the export's results, every result of the folder now)."""
    folder = Path(folder)
    read_run(folder)  # a missing or foreign folder is a usage error, before the verification
    check_verifies(folder)
    results, record = _export(folder, **options)
    # The folder is rewritten in place: SIGINT/SIGTERM wait until export.json, validate.txt, the reports
    # and the manifest all tell the new story (else it would no longer verify), then act.
    with signals_held():
        atomic_write(folder / EXPORT_FILE, canonical_json(record, pretty=True))
        every = finish_export(folder, results)
        COMMITTED.append((folder, True))
    return results, every


__all__ = [
    "EXPORT_FILE", "ExportCell", "RunFolder", "Target", "check_verifies", "collection_name", "export_folder",
    "export_run", "finish_export", "load_cell", "primary_key", "read_run", "resolve_target", "run_identity",
    "token_from_env",
]
