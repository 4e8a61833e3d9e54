"""Numeric command-line flags and their ranges, in one place.

A flag that sets what the spec can set (`--concurrency` and `execution.concurrency`, `--fps` and
`parameters.fps`, ...) takes its range from the spec schema, so `--concurrency 0` is refused as a
usage error (exit 2) by the very rule that refuses `execution: {concurrency: 0}` (exit 3).
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

from harness.spec.load import spec_schema


def number(kind: type, *, minimum: float | None = None, maximum: float | None = None,
           above: float | None = None) -> Callable[[str], float]:
    """An argparse `type=` that parses `kind` (int or float) and refuses values out of range."""
    name = "an integer" if kind is int else "a number"
    allowed = describe(minimum=minimum, maximum=maximum, above=above)

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {name} ({allowed})") from None
        if (kind is float and not math.isfinite(value)) or (minimum is not None and value < minimum) \
                or (maximum is not None and value > maximum) or (above is not None and value <= above):
            raise argparse.ArgumentTypeError(f"{text} is out of range ({allowed})")
        return value

    parse.__name__ = kind.__name__
    return parse


def amount(text: str) -> float:
    """An argparse `type=` for a sum of money (`--max-cost`): a finite number ≥ 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text}: give an amount ≥ 0")
    return value


def describe(*, minimum=None, maximum=None, above=None) -> str:
    """The range in words, for messages and --help."""
    low = f"more than {above}" if above is not None else (f"at least {minimum}" if minimum is not None else "")
    if maximum is None:
        return low or "any number"
    if minimum is not None and above is None:
        return f"{minimum} to {maximum}"
    return f"{low}, at most {maximum}" if low else f"at most {maximum}"


def _schema_node(pointer: str) -> dict:
    schema = spec_schema()
    node = schema
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part]
    while "$ref" in node and node["$ref"].startswith("#/"):
        node = {**_schema_node(node["$ref"]), **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _bounds(pointer: str) -> dict:
    node = _schema_node(pointer)
    return {"minimum": node.get("minimum"), "maximum": node.get("maximum"), "above": node.get("exclusiveMinimum")}


def setting(pointer: str) -> Callable[[str], float]:
    """A flag for the spec setting at `pointer` in the spec schema, with its type and range."""
    node = _schema_node(pointer)
    return number(int if node.get("type") == "integer" else float, **_bounds(pointer))


def choices(pointer: str) -> list:
    """The values the spec setting at `pointer` may take (its schema `enum`), for argparse `choices=`."""
    return list(_schema_node(pointer)["enum"])


def range_of(pointer: str) -> str:
    """The range of the spec setting at `pointer`, in words (for --help)."""
    return describe(**_bounds(pointer))


EXECUTION = "#/properties/execution/properties/"
PARAMETERS = "#/$defs/parameters/properties/"
DIMENSION = "#/$defs/dimension"
TOP_K = "#/properties/export/properties/top_k"
# `harness diff` tolerances: a cosine distance, and a change of a metric that lies in 0..1
cosine_distance = number(float, minimum=0, maximum=2)
metric_change = number(float, minimum=0, maximum=1)
