"""The spec schema is a contract people read: every property describes itself, unknown keys are
refused everywhere, and the examples it gives are valid."""

from __future__ import annotations

import jsonschema

from harness.spec.load import load_schemas


def _objects(node, path="#"):
    """Every object schema by path; a subschema whose properties are all `true` is no object schema but
    the declaration ajv's strictRequired wants beside a `required` (in an if, not, oneOf...)."""
    if isinstance(node, dict):
        if "properties" in node and not all(v is True for v in node["properties"].values()):
            yield path, node
        for key, value in node.items():
            yield from _objects(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _objects(value, f"{path}/{i}")


def test_every_property_has_a_description_and_objects_refuse_unknown_keys():
    schema, _ = load_schemas()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema" and schema["$id"]
    missing, open_objects = [], []
    for path, obj in _objects(schema):
        if obj.get("additionalProperties") is not False:
            open_objects.append(path)
        for name, prop in obj["properties"].items():
            target = prop
            if "$ref" in prop and not prop.get("description"):
                ref = prop["$ref"]
                target = schema["$defs"][ref.split("/")[-1]] if ref.startswith("#/$defs/") else {"description": ref}
            if not target.get("description"):
                missing.append(f"{path}/properties/{name}")
    assert not missing, missing
    assert not open_objects, open_objects


def test_the_schemas_own_examples_are_valid():
    schema, registry = load_schemas()
    checked = 0
    for name in ("input", "model"):
        sub = {"$ref": f"{schema['$id']}#/$defs/{name}"}
        validator = jsonschema.Draft202012Validator(sub, registry=registry.with_resource(
            schema["$id"], __import__("referencing").Resource.from_contents(schema)))
        for example in schema["$defs"][name].get("examples", []):
            validator.validate(example)
            checked += 1
    assert checked >= 2
