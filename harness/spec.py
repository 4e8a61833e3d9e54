"""YAML spec → `Spec`: safe load with positions, JSON Schema errors as `file:line:col (hint)`.

The JSON Schema in `schemas/spec.schema.json` is the only description of the spec's shape; this
module validates against it and turns each error into words a person can act on.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource

from harness import yamlpos
from harness.errors import ExitCode, HarnessError, Problem
from harness.evidence import sha256_bytes

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"
SPEC_SCHEMA = "spec.schema.json"


@lru_cache(maxsize=1)
def load_schemas() -> tuple[dict, Registry]:
    """The spec schema and a registry holding every schema it references (checks, …)."""
    registry = Registry()
    main = None
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        registry = registry.with_resource(doc["$id"], Resource.from_contents(doc))
        if path.name == SPEC_SCHEMA:
            main = doc
    if main is None:
        raise HarnessError(f"the spec schema is missing from {SCHEMA_DIR}", ExitCode.INTERNAL)
    return main, registry


def schema_info() -> dict[str, str]:
    schema, _ = load_schemas()
    return {"id": schema["$id"], "sha256": sha256_bytes((SCHEMA_DIR / SPEC_SCHEMA).read_bytes())}


@dataclass
class Spec:
    """A spec that passed the schema. `data` is plain Python values; `positions` maps paths to
    line/col so later stages (catalog rules, inputs) can point at the right place."""

    data: dict[str, Any]
    display: str                      # how the file is named in messages
    base_dir: Path                    # relative input paths resolve against this
    path: Path | None = None          # None for a spec built in memory (`harness prepare`)
    raw: bytes = b""
    positions: yamlpos.Positions = field(default_factory=yamlpos.Positions)
    problems: list[Problem] = field(default_factory=list)   # schema problems, reported with later ones

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


_TYPE_NAMES = {"string": "a string", "integer": "an integer", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def _type_of(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
            dict: "mapping", type(None): "null"}.get(type(value), type(value).__name__)


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _leaf(error: ValidationError) -> ValidationError:
    """For anyOf/oneOf without a custom message, the sub-error that explains most."""
    while error.validator in ("anyOf", "oneOf") and error.context and "errorMessage" not in error.schema:
        # a branch that failed only on its type (a string where a mapping was given) explains nothing
        fitting = [e for e in error.context if not (e.validator == "type" and not e.relative_path)]
        error = best_match(fitting or error.context)
    return error


def _explain(error: ValidationError, spec: Spec) -> list[Problem]:
    error = _leaf(error)
    path = tuple(error.absolute_path)
    where = format_path(path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    custom = schema.get("errorMessage")
    v = error.validator
    if v == "additionalProperties" or v == "unevaluatedProperties":
        allowed = list((schema.get("properties") or {}).keys())
        extras = [k for k in error.instance if k not in allowed] if isinstance(error.instance, dict) else []
        out = []
        for key in extras:
            hint = _did_you_mean(key, allowed) or f"allowed keys here: {', '.join(allowed)}"
            place = f" in {where}" if path else ""
            out.append(spec.problem(path + (key,), f"unknown key {key!r}{place}", hint, prefer_key=True))
        return out
    if custom and v in ("oneOf", "anyOf", "not", "if", "then", "else"):
        return [spec.problem(path, f"{where}: {custom}", prefer_key=True)]
    if v == "required":
        missing = re.findall(r"'([^']+)' is a required property", error.message)
        key = missing[0] if missing else "?"
        desc = ((schema.get("properties") or {}).get(key) or {}).get("description")
        return [spec.problem(path, f"{where} is missing the required key {key!r}", desc, prefer_key=True)]
    if v == "type":
        want = error.validator_value
        wants = " or ".join(_TYPE_NAMES.get(t, t) for t in (want if isinstance(want, list) else [want]))
        return [spec.problem(path, f"{where} must be {wants}, not {_type_of(error.instance)} {_short(error.instance)}",
                             schema.get("description"))]
    if v in ("enum", "const"):
        options = error.validator_value if v == "enum" else [error.validator_value]
        hint = _did_you_mean(error.instance, options) or f"use one of: {', '.join(map(str, options))}"
        return [spec.problem(path, f"{where} is {_short(error.instance)}, which is not allowed", hint)]
    if v == "minItems" and error.validator_value == 1:
        return [spec.problem(path, f"{where} is empty", f"add at least one entry; {schema.get('description', '')}".strip("; "),
                             prefer_key=True)]
    if v == "pattern":
        return [spec.problem(path, f"{where} {_short(error.instance)} is not allowed here", schema.get("description"))]
    return [spec.problem(path, f"{where}: {error.message}", schema.get("description"))]


def schema_problems(data: Any, spec: Spec) -> list[Problem]:
    schema, registry = load_schemas()
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    problems: list[Problem] = []
    for error in validator.iter_errors(data):
        problems.extend(_explain(error, spec))
    return problems


def read_spec(path: str | Path) -> Spec:
    """Read and parse a spec file. YAML problems raise at once; schema problems are kept in
    `spec.problems` so the planner can report them together with catalog and input problems."""
    path = Path(path)
    display = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise HarnessError(Problem("no such file", display, hint="check the path; `harness init` writes a starter spec"))
    except IsADirectoryError:
        raise HarnessError(Problem("is a folder, not a spec file", display))
    except OSError as e:
        raise HarnessError(Problem(f"cannot read the file: {e.strerror}", display))
    if len(raw) > yamlpos.MAX_BYTES:
        raise HarnessError(Problem(f"the file is larger than {yamlpos.MAX_BYTES // 2**20} MB", display, 1, 1,
                                   "put long input lists in a CSV or JSONL file and use `from:`"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise HarnessError(Problem(f"the file is not UTF-8 text (byte {e.start})", display, hint="save it as UTF-8"))
    try:
        data, positions = yamlpos.load(text)
    except yamlpos.YamlProblem as e:
        raise HarnessError(Problem(e.message, display, e.line, e.col, e.hint))
    spec = Spec(data=data if isinstance(data, dict) else {}, display=display, base_dir=path.resolve().parent,
                path=path, raw=raw, positions=positions)
    if not isinstance(data, dict):
        raise HarnessError(Problem("a spec is a YAML mapping (version, name, models, inputs, ...)", display, 1, 1,
                                   "`harness init` writes a starter spec"))
    spec.problems = schema_problems(data, spec)
    return spec


def spec_from_data(data: dict, base_dir: Path, display: str = "<command line>") -> Spec:
    """A spec built in memory (e.g. by `harness prepare`); validated against the same schema."""
    raw = json.dumps(data, sort_keys=True, ensure_ascii=False).encode("utf-8")
    spec = Spec(data=data, display=display, base_dir=base_dir, path=None, raw=raw)
    spec.problems = schema_problems(data, spec)
    return spec
