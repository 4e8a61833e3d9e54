"""YAML spec → `Spec`: safe load with positions, JSON Schema errors as `file:line:col (hint)`.

The JSON Schema in `schemas/spec.schema.json` is the only description of the spec's shape; this
module validates against it and turns each error into words a person can act on.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.errors import InternalError, Problem, SpecError
from harness.evidence import sha256_bytes
from harness.spec import schemafast, yamlpos

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SPEC_SCHEMA = "spec.schema.json"
# The schema files carry no `$id`, so standard validators (check-jsonschema, ajv, yaml-language-server)
# resolve their relative `$ref`s beside the file, offline. The harness names each by the path it has in
# the repository and the package (`schemas/spec.schema.json`): what messages and the manifest cite.
SCHEMA_BASE = "schemas/"
# The harness's words for a spec that fails a oneOf/anyOf/not/if of a schema, by JSON pointer, beside
# the schemas: `errorMessage` is no JSON Schema keyword, and ajv's strict mode refuses unknown ones.
SCHEMA_MESSAGES = "messages.json"


@lru_cache(maxsize=1)
def schema_documents() -> dict[str, dict]:
    """Every schema file by name (spec, checks, …), each with its `$id`: its path, under SCHEMA_BASE."""
    docs = {path.name: {"$id": SCHEMA_BASE + path.name, **json.loads(path.read_text(encoding="utf-8"))}
            for path in sorted(SCHEMA_DIR.glob("*.schema.json"))}
    if SPEC_SCHEMA not in docs:
        raise InternalError(f"the spec schema is missing from {SCHEMA_DIR}")
    return docs


@lru_cache(maxsize=1)
def schema_messages() -> dict[int, str]:
    """schemas/messages.json as {id(subschema): message}, the subschemas being those of
    `schema_documents()` (the very objects a jsonschema error carries as `error.schema`)."""
    docs = schema_documents()
    out: dict[int, str] = {}
    raw = json.loads((SCHEMA_DIR / SCHEMA_MESSAGES).read_text(encoding="utf-8"))
    for name, by_pointer in raw.items():
        if name.startswith("$"):
            continue
        for pointer, message in by_pointer.items():
            node: Any = docs[name]
            try:
                for part in pointer.split("/")[1:]:
                    part = part.replace("~1", "/").replace("~0", "~")
                    node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError):
                raise InternalError(f"{SCHEMA_MESSAGES}: {name}#{pointer} is no subschema of {name}") from None
            out[id(node)] = message
    return out


def spec_schema() -> dict:
    """The spec schema alone (no jsonschema import: enough for reading its ranges and texts)."""
    return schema_documents()[SPEC_SCHEMA]


@lru_cache(maxsize=1)
def load_schemas():
    """The spec schema and a `referencing.Registry` holding every schema it references."""
    from referencing import Registry, Resource

    registry = Registry()
    for doc in schema_documents().values():
        registry = registry.with_resource(doc["$id"], Resource.from_contents(doc))
    return spec_schema(), registry


@lru_cache(maxsize=1)
def _checker() -> schemafast.Checker:
    return schemafast.Checker(schema_documents())


@lru_cache(maxsize=1)
def _validator():
    """jsonschema's validator for the spec, which skips the inputs the fast checker vouches
    for: their errors (none) cost nothing, every other input is checked and worded as before."""
    import jsonschema

    schema, registry = load_schemas()
    input_items = schema["properties"]["inputs"]["items"]
    items = jsonschema.Draft202012Validator.VALIDATORS["items"]
    checker = _checker()

    def inputs_items(validator, value, instance, subschema):
        if value is input_items and isinstance(instance, list) and not subschema.get("prefixItems"):
            for index, item in enumerate(instance):
                if not checker.valid(item, SPEC_SCHEMA, value):
                    yield from validator.descend(item, value, path=index)
            return
        yield from items(validator, value, instance, subschema)

    cls = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"items": inputs_items})
    return cls(schema, registry=registry)


def schema_info() -> dict[str, str]:
    schema = spec_schema()
    return {"id": schema["$id"], "sha256": sha256_bytes((SCHEMA_DIR / SPEC_SCHEMA).read_bytes())}


@dataclass
class Spec:
    """A parsed spec. `data` holds the parts that passed the schema (all of it when `problems` is
    empty), so later stages (catalog rules, inputs, checks) run on what is valid and report their
    own mistakes alongside the schema's; `positions` maps paths to line/col for those reports."""

    data: dict[str, Any]
    display: str                      # how the file is named in messages
    base_dir: Path                    # relative input paths resolve against this
    path: Path | None = None          # None for a spec built in memory (`harness prepare`)
    raw: bytes = b""
    positions: yamlpos.Positions = field(default_factory=yamlpos.Positions)
    problems: list[Problem] = field(default_factory=list)   # schema problems, reported with later ones
    refused: frozenset[tuple] = frozenset()                  # paths the schema refused (gone from `data`)
    document: dict[str, Any] = field(default_factory=dict, repr=False)   # the mapping as written

    def intact(self, path: tuple) -> bool:
        """Did the schema accept everything at, above and below `path`?"""
        path = tuple(path)
        return not any(r[:len(path)] == path or path[:len(r)] == r for r in self.refused)

    @property
    def name(self) -> str:
        return self.data["name"]

    @property
    def sha256(self) -> str:
        return sha256_bytes(self.raw)

    def problem(self, path: tuple, message: str, hint: str | None = None, *,
                severity: str = "error", prefer_key: bool = False) -> Problem:
        if self.path is None:
            return Problem(f"{format_path(path)}: {message}" if path else message, hint=hint, severity=severity)
        line, col = self.positions.of(path, prefer_key=prefer_key)
        return Problem(message, self.display, line, col, hint, severity)


def format_path(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _did_you_mean(word: str, choices) -> str | None:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _pattern_fix(value: Any, pattern: str) -> str | None:
    """The value a pattern of named alternatives (`(recall|ndcg|...)@K`) most likely meant: its leading
    word replaced by the closest alternative (`recal@1` -> `recall@1`, `NDCG10` -> `ndcg@10`), when that
    matches the pattern; None when no such fix does."""
    found = re.match(r"([A-Za-z]+)(.*)", value) if isinstance(value, str) else None
    if found is None:
        return None
    word, rest = found.groups()
    words = sorted(set(re.findall(r"(?<=[(|])([A-Za-z]+)(?=[|)])", pattern)))
    close = difflib.get_close_matches(word.lower(), words, n=1, cutoff=0.6)
    digits = re.sub(r"\D", "", rest)
    for fixed in ([close[0] + rest, close[0] + "@" + digits, close[0]] if close else []):
        if fixed != value and re.search(pattern, fixed):
            return fixed
    return None


_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def _type_of(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _leaves(error) -> list:
    """For anyOf/oneOf without a custom message, the sub-errors that explain it: every error of
    the one branch that fits the value's kind (so each bad item of a list is reported), else the
    single sub-error that explains most."""
    if error.validator not in ("anyOf", "oneOf") or not error.context or id(error.schema) in schema_messages():
        return [error]
    branches: dict[Any, list] = {}
    for e in error.context:
        branches.setdefault(e.relative_schema_path[0], []).append(e)
    # a branch refused for the value's kind itself (a list where a keyword was expected) does not fit
    fitting = [errs for errs in branches.values()
               if not any(e.validator in ("type", "enum", "const") and not e.relative_path for e in errs)]
    if len(fitting) == 1:
        return [leaf for e in fitting[0] for leaf in _leaves(e)]
    from jsonschema.exceptions import best_match

    # a branch that failed only on its type (a string where a mapping was given) explains nothing
    plausible = [e for e in error.context if not (e.validator == "type" and not e.relative_path)]
    return _leaves(best_match(plausible or error.context))


def _explain(error, spec: Spec) -> list[tuple[tuple, Problem]]:
    """(refused path, problem) for each mistake behind `error`."""
    return [found for leaf in _leaves(error) for found in _explain_leaf(leaf, spec)]


def _explain_leaf(error, spec: Spec) -> list[tuple[tuple, Problem]]:
    path = tuple(error.absolute_path)
    where = format_path(path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    custom = schema_messages().get(id(error.schema))
    v = error.validator
    if v == "additionalProperties" or v == "unevaluatedProperties":
        allowed = list((schema.get("properties") or {}).keys())
        extras = [k for k in error.instance if k not in allowed] if isinstance(error.instance, dict) else []
        out = []
        for key in extras:
            hint = _did_you_mean(key, allowed) or f"allowed keys here: {', '.join(allowed)}"
            place = f" in {where}" if path else ""
            out.append((path + (key,),
                        spec.problem(path + (key,), f"unknown key {key!r}{place}", hint, prefer_key=True)))
        return out
    if custom and v in ("oneOf", "anyOf", "not", "if", "then", "else"):
        return [(path, spec.problem(path, f"{where}: {custom}", prefer_key=True))]
    if v == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        key = missing[0] if missing else "?"
        desc = ((schema.get("properties") or {}).get(key) or {}).get("description")
        # an entry missing a required key is unusable as a whole; the spec itself only lacks that key
        return [(path + (key,) if not path else path,
                 spec.problem(path, f"{where} is missing the required key {key!r}", desc, prefer_key=True))]
    if v == "type":
        want = error.validator_value
        wants = " or ".join(_TYPE_NAMES.get(t, t) for t in (want if isinstance(want, list) else [want]))
        return [(path, spec.problem(path, f"{where} must be {wants}, not {_type_of(error.instance)} "
                                          f"{_short(error.instance)}", schema.get("description")))]
    if v in ("enum", "const"):
        options = error.validator_value if v == "enum" else [error.validator_value]
        hint = _did_you_mean(error.instance, options) or f"use one of: {', '.join(map(str, options))}"
        return [(path, spec.problem(path, f"{where} is {_short(error.instance)}, which is not allowed", hint))]
    if v == "minItems" and error.validator_value == 1:
        return [(path, spec.problem(path, f"{where} is empty",
                                    f"add at least one entry; {schema.get('description', '')}".strip("; "),
                                    prefer_key=True))]
    if v == "pattern":
        # a mapping's key refused by `propertyNames` (a metric in `min`) is pointed at where it is written
        at = path + (error.instance,) if "propertyNames" in error.schema_path else path
        fix = _pattern_fix(error.instance, error.validator_value)
        hint = " ".join(h for h in (f"did you mean {fix!r}?" if fix else None, schema.get("description")) if h)
        return [(path, spec.problem(at, f"{where} {_short(error.instance)} is not allowed here", hint or None,
                                    prefer_key=at != path))]
    return [(path, spec.problem(path, f"{where}: {error.message}", schema.get("description")))]


def _scope(path: tuple) -> tuple:
    """How much of the spec a refused value takes out of the later stages. Inputs, checks and
    matrix entries are used whole, so a mistake anywhere in one drops that entry; a model entry
    keeps its valid parts (its name is still checked when one of its dimensions is refused)
    unless the name itself is refused."""
    if path[:1] in (("inputs",), ("checks",)):
        return path[:2]
    if path[:1] == ("matrix",):
        return path[:3]
    if path[:1] == ("models",) and path[2:3] == ("name",):
        return path[:2]
    return path


_GONE = object()


def _usable(value: Any, path: tuple, refused: set[tuple], above: set[tuple] | None = None) -> Any:
    """`value` without what the schema refused: refused keys are dropped and refused list items
    become None (indexes, and so positions, stay right); a list left with nothing usable is
    refused as a whole. Parts holding nothing refused are kept as they are, not copied."""
    if above is None:
        above = {r[:i] for r in refused for i in range(len(r))}   # the paths that hold a refused one
    if path in refused:
        return _GONE
    if path not in above:
        return value
    if isinstance(value, dict):
        out = {k: _usable(v, path + (k,), refused, above) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not _GONE}
    if isinstance(value, list):
        items = [_usable(v, path + (i,), refused, above) for i, v in enumerate(value)]
        if items and all(v is _GONE for v in items):
            refused.add(path)
            return _GONE
        return [None if v is _GONE else v for v in items]
    return value


def _non_finite(value: Any, path: tuple = ()) -> list[tuple[tuple, float]]:
    """Paths of YAML's .nan/.inf: JSON (so the schema, the payloads and the evidence) has no such number."""
    found = []

    def walk(value, path):
        if isinstance(value, float):
            if not math.isfinite(value):
                found.append((path, value))
        elif isinstance(value, dict):
            for k, v in value.items():
                if type(v) is not str:        # most values: nothing to look into
                    walk(v, path + (k,))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                if type(v) is not str:
                    walk(v, path + (i,))

    walk(value, path)
    return found


def check_against_schema(spec: Spec, document: dict) -> None:
    """Set `spec.problems` (every schema mistake, each explained once) and `spec.data` (the
    document without what the schema refused)."""
    problems: dict[Problem, None] = {}
    refused: set[tuple] = set()
    found = [(path, spec.problem(path, f"{format_path(path)} is {value}, which is not a finite number",
                                 "write a number such as 0.5"))
             for path, value in _non_finite(document)]
    odd = {path for path, _ in found}
    if found or not _checker().valid(document, SPEC_SCHEMA):     # the common valid spec stops here
        for error in _validator().iter_errors(document):
            found.extend(f for f in _explain(error, spec) if f[0] not in odd)   # .inf is not also "too large"
    for path, problem in found:
        problems.setdefault(problem)
        refused.add(_scope(path))
    data = _usable(document, (), refused)
    spec.document = document
    spec.data = data if isinstance(data, dict) else {}
    spec.problems = list(problems)
    spec.refused = frozenset(refused)


def read_spec(path: str | Path) -> Spec:
    """Read and parse a spec file. YAML problems raise at once; schema problems are kept in
    `spec.problems` so the planner can report them together with catalog and input problems."""
    path = Path(path)
    display = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(Problem("no such file", display, hint="check the path; `harness init` writes a starter spec"))
    except IsADirectoryError:
        raise SpecError(Problem("is a folder, not a spec file", display))
    except OSError as e:
        raise SpecError(Problem(f"cannot read the file: {e.strerror}", display))
    if len(raw) > yamlpos.MAX_BYTES:
        raise SpecError(Problem(f"the file is larger than {yamlpos.MAX_BYTES // 2**20} MB", display, 1, 1,
                                   "put long input lists in a CSV or JSONL file and use `from:`"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(Problem(f"the file is not UTF-8 text (byte {e.start})", display, hint="save it as UTF-8"))
    try:
        data, positions = yamlpos.load(text)
    except yamlpos.YamlProblem as e:
        raise SpecError(Problem(e.message, display, e.line, e.col, e.hint, source=e.excerpt))
    spec = Spec(data=data if isinstance(data, dict) else {}, display=display, base_dir=path.resolve().parent,
                path=path, raw=raw, positions=positions)
    if not isinstance(data, dict):
        raise SpecError(Problem("a spec is a YAML mapping (version, name, models, inputs, ...)", display, 1, 1,
                                   "`harness init` writes a starter spec"))
    check_against_schema(spec, data)
    return spec


def spec_from_data(data: dict, base_dir: Path, display: str = "<command line>") -> Spec:
    """A spec built in memory (e.g. by `harness prepare`); validated against the same schema."""
    raw = json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
    spec = Spec(data=data, display=display, base_dir=base_dir, path=None, raw=raw)
    check_against_schema(spec, data)
    return spec
