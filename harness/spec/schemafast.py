"""A quick "certainly valid" test of a document against the harness's JSON Schemas.

jsonschema spends about 70 µs on each inline input (a validator object per keyword it descends
into) and its import is most of a one-shot command's start-up. This checker reads the same
schema files and answers only yes or "not sure": a keyword it does not know, a value it is
not certain about (1.0 for an integer, a list of mixed values for uniqueItems) or any failure is
"not sure", and then jsonschema checks the part in question and words every error exactly as
before. It may be stricter than jsonschema, never more lenient (tests compare the two).
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# keywords that say nothing about validity
_ANNOTATIONS = frozenset({"description", "examples", "default", "title", "$schema", "$id", "$defs",
                          "$comment", "deprecated", "readOnly", "writeOnly"})
_TYPES = {"string": (str,), "object": (dict,), "array": (list,), "boolean": (bool,), "null": (type(None),),
          "integer": (int,), "number": (int, float)}


class _Unsure(Exception):
    """A keyword or value this checker does not judge: leave it to jsonschema."""


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def plain_input(item: Any) -> bool:
    """The common inline input, `{id?, text|image|video, models?}` with non-empty strings: valid
    against `$defs/input` without walking it (a test checks this against the schema)."""
    if type(item) is not dict:
        return False
    kinds = 0
    for key, value in item.items():
        if key == "text" or key == "image" or key == "video":
            kinds += 1
        elif key == "models":
            if not (type(value) is list and value and all(type(v) is str and v for v in value)
                    and len(set(value)) == len(value)):
                return False
            continue
        elif key != "id":
            return False
        if type(value) is not str or not value:
            return False
    return kinds == 1


# schemas whose common instances a function judges at once: (schema file, $ref) → test
SHORTCUTS = {("spec.schema.json", "#/$defs/input"): plain_input}


def _is(instance: Any, kind: str) -> bool:
    if type(instance) is bool:
        return kind == "boolean"
    return isinstance(instance, _TYPES[kind]) if kind in _TYPES else False


def _same(instance: Any, value: Any) -> bool:
    """JSON equality of an instance and a plain scalar an enum/const names; not sure for numbers
    of two kinds (1 and 1.0 are equal to JSON Schema) and for anything unusual."""
    if not (value is None or type(value) in (str, int, bool)):
        raise _Unsure
    if instance is None or type(instance) in (str, bool, int, list, dict):
        return type(instance) is type(value) and instance == value
    raise _Unsure


class Checker:
    """`docs`: schema file name → its JSON; `$ref`s are within a file or name another file."""

    def __init__(self, docs: dict[str, dict]):
        self.docs = docs

    def valid(self, instance: Any, doc: str, schema: Any = None) -> bool:
        """True only when `instance` certainly satisfies `schema` (default: the whole file `doc`)."""
        try:
            return self._ok(instance, self.docs[doc] if schema is None else schema, doc)
        except (_Unsure, KeyError, TypeError, ValueError, RecursionError, re.error):
            return False

    def _ref(self, ref: str, doc: str) -> tuple[Any, str]:
        name, _, pointer = ref.partition("#")
        doc = name or doc
        node = self.docs[doc]
        for part in filter(None, pointer.split("/")):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, doc

    def _ok(self, x: Any, s: Any, doc: str) -> bool:
        if s is True:
            return True
        if s is False or type(s) is not dict:
            return s is True
        for key, v in s.items():
            if key in _ANNOTATIONS:
                continue
            check = _KEYWORDS.get(key)
            if check is None:
                raise _Unsure
            if not check(self, x, v, s, doc):
                return False
        return True


def _type(c, x, v, s, doc):
    if type(x) is float and ("integer" in (v if isinstance(v, list) else [v])):
        raise _Unsure                         # 1.0 is an integer to JSON Schema
    return any(_is(x, t) for t in (v if isinstance(v, list) else [v]))


def _properties(c, x, v, s, doc):
    return not isinstance(x, dict) or all(c._ok(x[k], sub, doc) for k, sub in v.items() if k in x)


def _additional(c, x, v, s, doc):
    if not isinstance(x, dict):
        return True
    if "patternProperties" in s:
        raise _Unsure
    props = s.get("properties", {})
    extras = [k for k in x if k not in props]
    return all(c._ok(x[k], v, doc) for k in extras) if extras and v is not False else not extras or v is not False


def _items(c, x, v, s, doc):
    if not isinstance(x, list):
        return True
    start = len(s.get("prefixItems", ()))
    return all(c._ok(item, v, doc) for item in x[start:])


def _prefix_items(c, x, v, s, doc):
    return not isinstance(x, list) or all(c._ok(item, sub, doc) for item, sub in zip(x, v))


def _unique(c, x, v, s, doc):
    if not v or not isinstance(x, list):
        return True
    if not all(type(i) is str or type(i) is int for i in x):
        raise _Unsure                     # 1 and 1.0 are the same item to JSON Schema, 1 and true are not
    return len({(type(i), i) for i in x}) == len(x)


def _ref(c, x, v, s, doc):
    shortcut = SHORTCUTS.get((doc, v))
    if shortcut is not None and shortcut(x):
        return True
    target, where = c._ref(v, doc)
    return c._ok(x, target, where)


def _one_of(c, x, v, s, doc):
    return sum(1 for sub in v if c._ok(x, sub, doc)) == 1


def _if(c, x, v, s, doc):
    branch = s.get("then", True) if c._ok(x, v, doc) else s.get("else", True)
    return c._ok(x, branch, doc)


def _number(test):
    def check(c, x, v, s, doc):
        return isinstance(x, bool) or not isinstance(x, (int, float)) or test(x, v)
    return check


def _sized(kind, size, test):
    def check(c, x, v, s, doc):
        return not isinstance(x, kind) or test(size(x), v)
    return check


_KEYWORDS = {
    "type": _type,
    "enum": lambda c, x, v, s, doc: any(_same(x, e) for e in v),
    "const": lambda c, x, v, s, doc: _same(x, v),
    "properties": _properties,
    "additionalProperties": _additional,
    "required": lambda c, x, v, s, doc: not isinstance(x, dict) or all(k in x for k in v),
    "propertyNames": lambda c, x, v, s, doc: not isinstance(x, dict) or all(c._ok(k, v, doc) for k in x),
    "minProperties": _sized(dict, len, lambda n, v: n >= v),
    "maxProperties": _sized(dict, len, lambda n, v: n <= v),
    "items": _items,
    "prefixItems": _prefix_items,
    "minItems": _sized(list, len, lambda n, v: n >= v),
    "maxItems": _sized(list, len, lambda n, v: n <= v),
    "uniqueItems": _unique,
    "minLength": _sized(str, len, lambda n, v: n >= v),
    "maxLength": _sized(str, len, lambda n, v: n <= v),
    "pattern": lambda c, x, v, s, doc: not isinstance(x, str) or _regex(v).search(x) is not None,
    "minimum": _number(lambda n, v: n >= v),
    "maximum": _number(lambda n, v: n <= v),
    "exclusiveMinimum": _number(lambda n, v: n > v),
    "exclusiveMaximum": _number(lambda n, v: n < v),
    "$ref": _ref,
    "allOf": lambda c, x, v, s, doc: all(c._ok(x, sub, doc) for sub in v),
    "anyOf": lambda c, x, v, s, doc: any(c._ok(x, sub, doc) for sub in v),
    "oneOf": _one_of,
    "not": lambda c, x, v, s, doc: not c._ok(x, v, doc),
    "if": _if,
    "then": lambda c, x, v, s, doc: True,     # judged with `if`
    "else": lambda c, x, v, s, doc: True,
}
