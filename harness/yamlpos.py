"""Safe YAML with source positions, built on PyYAML's node graph.

PyYAML's loaders throw positions away; composing nodes and building the plain values ourselves
keeps a `line:col` for every key and value, rejects duplicate keys (PyYAML silently keeps the
last one), bounds alias expansion (in values and in bytes) so a "billion laughs" file cannot
exhaust memory or disk, and refuses text that is not valid Unicode (a lone "\ud800").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

MAX_BYTES = 10 * 1024 * 1024      # a spec is a page of YAML; anything this large is a mistake
MAX_NODES = 1_000_000             # values produced after alias expansion
# characters of scalars reached through aliases: one short anchor repeated is fine, a 1 MB string
# aliased 5,000 times would be 5 GB of payloads
MAX_ALIAS_CHARS = 4 * MAX_BYTES

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


class _Alias(yaml.Node):
    """An alias where it is written (PyYAML hands back the anchored node, losing the alias's place)."""

    id = "alias"

    def __init__(self, target: yaml.Node, start_mark, end_mark):
        super().__init__(target.tag, target.value, start_mark, end_mark)
        self.target = target


class _Loader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            return _Alias(super().compose_node(parent, index), event.start_mark, event.end_mark)
        return super().compose_node(parent, index)


class _Builder:
    def __init__(self, loader: yaml.SafeLoader):
        self.loader = loader
        self.pos = Positions()
        self.count = 0
        self.aliases: list[_Alias] = []      # the aliases being expanded, outermost first
        self.alias_chars = 0
        self.open: set[int] = set()          # ids of the collections being built (a recursive alias)

    def build(self, node: yaml.Node, path: Path_ = ()) -> Any:
        if isinstance(node, _Alias):
            return self._alias(node, path)
        self.count += 1
        if self.count > MAX_NODES:
            line, col = _mark(self.aliases[0] if self.aliases else node)
            raise YamlProblem(f"the document expands to more than {MAX_NODES:,} values", line, col,
                              "YAML aliases repeated this much look like an alias bomb; write the values out")
        self.pos.value.setdefault(path, _mark(node))
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(child, path + (i,)) for i, child in enumerate(node.value)]
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path)
        finally:
            self.open.discard(id(node))
        raise YamlProblem(f"unsupported YAML node {node.tag}", *_mark(node))

    def _alias(self, alias: _Alias, path: Path_) -> Any:
        if id(alias.target) in self.open:
            raise YamlProblem("this alias refers to a value that contains it", *_mark(alias),
                              "an alias cannot repeat its own anchor inside itself")
        self.pos.value.setdefault(path, _mark(alias))
        self.aliases.append(alias)
        try:
            return self.build(alias.target, path)
        finally:
            self.aliases.pop()

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        if self.aliases:
            self.alias_chars += len(node.value)
            if self.alias_chars > MAX_ALIAS_CHARS:
                raise YamlProblem(f"the aliases of this document expand to more than {MAX_ALIAS_CHARS // 2**20} MB "
                                  "of text", *_mark(self.aliases[0]),
                                  "YAML aliases repeated this much look like an alias bomb; write the values out, "
                                  "or put long texts in a CSV or JSONL file and use `from:`")
        try:
            value = self.loader.construct_object(node)
        except ValueError:   # an integer of more than 4,300 digits: Python refuses to read it
            raise YamlProblem(f"this number has {len(node.value):,} characters, too long to read", *_mark(node),
                              "write an ordinary number, or quote it to make it text") from None
        if isinstance(value, str) and not value.isascii():
            value = _unicode(value, node)
        return value

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
            if isinstance(key_node, _Alias):
                key_node = key_node.target
            if not isinstance(key_node, yaml.ScalarNode):
                raise YamlProblem("a mapping key must be a plain value, not a list or mapping", *_mark(key_node))
            key = self._scalar(key_node)
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


def _unicode(value: str, node: yaml.Node) -> str:
    """`value` as valid Unicode: an escaped surrogate pair ("\\ud83d\\ude00", as JSON writes an emoji)
    becomes its one character; a lone surrogate is an error at the value."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError as e:
        bad = value[e.start]
    try:
        return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le")
    except UnicodeDecodeError:
        raise YamlProblem(f"this text holds a lone surrogate ({bad!r}), which is not valid Unicode", *_mark(node),
                          "write the character itself, or both halves of a surrogate pair") from None


def load(text: str) -> tuple[Any, Positions]:
    """Parse one YAML document into plain values and their positions. Raises YamlProblem."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlProblem(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB", 1, 1,
                          "a spec should be small; put long input lists in a CSV or JSONL file and use `from:`")
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise YamlProblem("the document is nested too deeply", 1, 1, "flatten it") from None
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
        except RecursionError:
            raise YamlProblem("the document is nested too deeply", 1, 1, "flatten it") from None
        return value, builder.pos
    finally:
        loader.dispose()
