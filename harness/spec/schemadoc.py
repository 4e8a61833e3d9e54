"""The spec reference in Markdown, generated from the JSON Schema's descriptions (so
docs/spec-reference.md cannot drift from the contract: a test compares them)."""

from __future__ import annotations

import json

from harness.spec.load import SCHEMA_DIR, spec_schema


def _resolve(node: dict, root: dict) -> dict:
    while "$ref" in node and node["$ref"].startswith("#/$defs/"):
        node = {**root["$defs"][node["$ref"].split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _type(node: dict, root: dict) -> str:
    node = _resolve(node, root)
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "const" in node:
        return f"`{node['const']}`"
    for key in ("anyOf", "oneOf"):
        if key in node:
            return " or ".join(_type(n, root) for n in node[key])
    if "$ref" in node:
        return "check (see below)" if "checks" in node["$ref"] else node["$ref"]
    t = node.get("type", "")
    if t == "array":
        return f"list of {_type(node.get('items', {}), root)}"
    return t or "object"


def _rows(props: dict, root: dict, prefix: str, required: set, out: list[str]) -> None:
    for name, node in props.items():
        full = f"{prefix}{name}"
        node_r = _resolve(node, root)
        desc = (node_r.get("description") or node.get("description") or "").replace("|", "\\|").replace("\n", " ")
        default = f" Default: `{json.dumps(node_r['default'])}`." if "default" in node_r else ""
        req = " **required**" if name in required else ""
        out.append(f"| `{full}`{req} | {_type(node, root)} | {desc}{default} |")
        if node_r.get("type") == "object" and "properties" in node_r and name not in ("parameters",):
            _rows(node_r["properties"], root, f"{full}.", set(node_r.get("required", [])), out)


def spec_reference() -> str:
    schema = spec_schema()
    out = ["| key | type | meaning |", "|---|---|---|"]
    _rows(schema["properties"], schema, "", set(schema.get("required", [])), out)
    for name in ("model", "input", "parameters"):
        node = schema["$defs"][name]
        out.append(f"| **{name}** | | {node.get('description', '')} |")
        _rows(node["properties"], schema, f"{name}.", set(node.get("required", [])), out)
    checks = json.loads((SCHEMA_DIR / "checks.schema.json").read_text(encoding="utf-8"))
    out.append(f"| **check** | | {checks.get('description', '')} |")
    _rows(checks.get("properties", {}), checks, "check.", set(), out)
    return "\n".join(out) + "\n"
