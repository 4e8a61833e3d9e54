"""Safe YAML with source positions, built on PyYAML's node graph.

PyYAML's loaders throw positions away; composing nodes and building the plain values ourselves
keeps a `line:col` for every key and value, rejects duplicate keys (PyYAML silently keeps the
last one), and bounds alias expansion so a "billion laughs" file cannot exhaust memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_BYTES = 10 * 1024 * 1024      # a spec is a page of YAML; anything this large is a mistake
MAX_NODES = 1_000_000             # values produced after alias expansion

Path_ = tuple  # a path into the document: keys (str) and list indexes (int)


@dataclass
class Positions:
    """line/col (1-based) of every key and value, by path."""

    value: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def of(self, path: Path_, prefer_key: bool = False) -> tuple[int, int]:
        """Best position for `path`: the key for containers (where a person looks), the
        value for scalars; walks up to the nearest known ancestor."""
        path = tuple(path)
        while True:
            if prefer_key and path in self.key:
                return self.key[path]
            if path in self.value:
                return self.value[path]
            if path in self.key:
                return self.key[path]
            if not path:
                return (1, 1)
            path = path[:-1]


class YamlProblem(Exception):
    def __init__(self, message: str, line: int, col: int, hint: str | None = None):
        super().__init__(message)
        self.message, self.line, self.col, self.hint = message, line, col, hint


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, loader: yaml.SafeLoader):
        self.loader = loader
        self.pos = Positions()
        self.count = 0

    def build(self, node: yaml.Node, path: Path_ = ()) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            line, col = _mark(node)
            raise YamlProblem(f"the document expands to more than {MAX_NODES:,} values", line, col,
                              "YAML aliases repeated this much look like an alias bomb; write the values out")
        self.pos.value.setdefault(path, _mark(node))
        if isinstance(node, yaml.ScalarNode):
            return self.loader.construct_object(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, path + (i,)) for i, child in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        raise YamlProblem(f"unsupported YAML node {node.tag}", *_mark(node))

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict:
        out: dict = {}
        seen: dict[Any, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                merged = self.build(value_node, path)
                sources = merged if isinstance(merged, list) else [merged]
                for src in sources:
                    if not isinstance(src, dict):
                        raise YamlProblem("a merge key (<<) needs a mapping or a list of mappings", *_mark(value_node))
                    for k, v in src.items():
                        out.setdefault(k, v)
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem("a mapping key must be a plain value, not a list or mapping", *_mark(key_node))
            key = self.loader.construct_object(key_node)
            if not isinstance(key, str):
                key = str(key) if key is not None else "null"
            line, col = _mark(key_node)
            if key in seen:
                first = seen[key]
                raise YamlProblem(f"duplicate key {key!r} (first defined at line {first[0]})", line, col,
                                  "YAML keeps only the last value of a repeated key; remove one")
            seen[key] = (line, col)
            child = path + (key,)
            self.pos.key[child] = (line, col)
            out[key] = self.build(value_node, child)
        return out


def load(text: str) -> tuple[Any, Positions]:
    """Parse one YAML document into plain values and their positions. Raises YamlProblem."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlProblem(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB", 1, 1,
                          "a spec should be small; put long input lists in a CSV or JSONL file and use `from:`")
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            what = e.problem or str(e)
            if e.context:
                what = f"{e.context}, {what}"
            raise YamlProblem(f"invalid YAML: {what}", line, col,
                              "check indentation and quoting on this line or the one above") from None
        if node is None:
            return None, Positions()
        builder = _Builder(loader)
        try:
            value = builder.build(node)
        except yaml.constructor.ConstructorError as e:
            mark = e.problem_mark
            raise YamlProblem(f"invalid YAML value: {e.problem}", mark.line + 1, mark.column + 1) from None
        return value, builder.pos
    finally:
        loader.dispose()
