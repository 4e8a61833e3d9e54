"""Safe YAML with source positions, built on PyYAML's node graph.

PyYAML's loaders throw positions away; composing nodes and building the plain values ourselves
keeps a `line:col` for every key and value, rejects duplicate keys (PyYAML silently keeps the
last one), bounds alias expansion (in values and in bytes) so a "billion laughs" file cannot
exhaust memory or disk, and refuses text that is not valid Unicode (a lone "\ud800").

Two ways to the same answer: libyaml's parser, whose events build the values directly (about
15× faster), used when the document parses cleanly and has no alias or merge key, and PyYAML's
pure-Python composer, which gives every error and every alias its place. The C path never reports
an error itself: anything it would not answer exactly as the pure path does (an error, an alias,
deep nesting, the few texts the two parsers read differently) goes to the pure path. Positions of
a document read by the C path are found only when a message first needs one.
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import unicodedata
from dataclasses import dataclass, field
from sys import intern
from typing import Any, Callable

import yaml

from harness.errors import ExitCode, Failure

MAX_BYTES = 10 * 1024 * 1024      # a spec is a page of YAML; anything this large is a mistake
MAX_NODES = 1_000_000             # values produced after alias expansion
# characters of scalars reached through aliases: one short anchor repeated is fine, a 1 MB string
# aliased 5,000 times would be 5 GB of payloads
MAX_ALIAS_CHARS = 4 * MAX_BYTES

Path_ = tuple  # a path into the document: keys (str) and list indexes (int)
PURE_ENV = "HARNESS_PURE_YAML"    # "1": always the pure-Python path (tests compare the two)
MAX_C_DEPTH = 100                 # deeper documents take the pure path, which decides "nested too deeply"
_CLoader = getattr(yaml, "CSafeLoader", None)    # None when PyYAML was built without libyaml
# What libyaml reads where PyYAML refuses it, or places elsewhere (found by comparing the two on
# thousands of mutated specs, tests/test_fast_paths.py): a tab (PyYAML: "found character '\t'
# that cannot start any token"), a block scalar's header running into a comment (`|#`), a
# byte-order mark after the first character. Such texts take the pure path.
_PURE_ONLY = re.compile(r"\t|[|>][-+1-9]{0,2}#|\ufeff")
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class Positions:
    """line/col (1-based) of every key and value, by path."""

    value: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    key: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    # finds `value` and `key` on first use (a spec of 100k inputs keeps no map it never reads)
    find: Callable[[], "Positions"] | None = field(default=None, repr=False, compare=False)

    def of(self, path: Path_, prefer_key: bool = False) -> tuple[int, int]:
        """Best position for `path`: the key for containers (where a person looks), the
        value for scalars; walks up to the nearest known ancestor."""
        if self.find is not None:
            found, self.find = self.find(), None
            self.value, self.key = found.value, found.key
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


class YamlProblem(Failure):
    exit_code = ExitCode.SPEC_INVALID

    def __init__(self, message: str, line: int, col: int, hint: str | None = None):
        super().__init__(message)
        self.message, self.line, self.col, self.hint = message, line, col, hint
        self.excerpt: str | None = None      # the source line and a caret under `col` (`load` sets it)


EXCERPT_WIDTH = 100   # characters of a long source line shown around the column


def excerpt(text: str, line: int, col: int) -> str | None:
    """The source line `line` and a caret under column `col`, as a terminal shows them:

        12 |   - {id: cat, text: Where is it?}
           |                                ^

    A control character shows as U+FFFD and a tab as a space; a wide (CJK) character takes two
    columns, so the caret stays under its character; a long line shows EXCERPT_WIDTH characters
    around the column. The line after the last (an error at the end of the text) shows empty."""
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    source = "".join(" " if c == "\t" else c if c.isprintable() else "\ufffd"
                     for c in lines[line - 1].rstrip("\r"))
    at = min(max(col - 1, 0), len(source))
    start = max(0, min(at - EXCERPT_WIDTH // 2, len(source) - EXCERPT_WIDTH))
    shown = source[start:start + EXCERPT_WIDTH]
    lead, tail = ("…" if start else ""), ("…" if start + EXCERPT_WIDTH < len(source) else "")
    pad = len(lead) + sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in shown[:at - start])
    gutter = " " * len(str(line))
    return f"  {line} | {lead}{shown}{tail}\n  {gutter} | {' ' * pad}^"


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
        except ValueError as e:
            if "digits" in str(e):   # an integer of more than 4,300 digits: Python refuses to read it
                raise YamlProblem(f"this number has {len(node.value):,} characters, too long to read", *_mark(node),
                                  "write an ordinary number, or quote it to make it text") from None
            raise self._unreadable(node) from None
        except (IndexError, TypeError):   # an explicit tag on a value it cannot read: !!int ''
            raise self._unreadable(node) from None
        if isinstance(value, str) and not value.isascii():
            value = _unicode(value, node)
        return value

    @staticmethod
    def _unreadable(node: yaml.ScalarNode) -> YamlProblem:
        kind = node.tag.rsplit(":", 1)[-1]
        return YamlProblem(f"invalid YAML value: {_short(node.value)} cannot be read as {kind}", *_mark(node),
                           "fix the value, or drop the !!tag before it")

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


def _short(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


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


class _Fallback(Exception):
    """The C path cannot answer exactly as the pure path would (an error, an alias, deep nesting)."""


def _from_events(loader, pos: Positions | None) -> Any:
    """The plain values of the document libyaml parses, built from its events as they come (no
    node graph: 100k inputs would hold 200 MB of nodes), with their positions when `pos` is
    given. Same values and positions as `_Builder` on the pure path; _Fallback for anything
    that path would treat differently (errors, aliases, merge keys, deep nesting)."""
    get, resolve, construct = loader.get_event, loader.resolve, loader.construct_object
    Scalar, SeqEnd, MapEnd = yaml.ScalarEvent, yaml.SequenceEndEvent, yaml.MappingEndEvent
    SeqStart, MapStart = yaml.SequenceStartEvent, yaml.MappingStartEvent
    count = 0

    def scalar(ev, flow):
        if flow and not ev.style and ("?" in ev.value or not ev.value):
            # inside [ ] or { }, PyYAML reads "?" in a plain value as a key, and places an
            # empty value elsewhere than libyaml does
            raise _Fallback
        tag = ev.tag
        if tag is None or tag == "!":
            tag = resolve(yaml.ScalarNode, ev.value, ev.implicit)
        if tag == _STR:
            value = ev.value
        else:
            if tag == _MERGE:
                raise _Fallback
            value = construct(yaml.ScalarNode(tag, ev.value, ev.start_mark, ev.end_mark, ev.style))
        if isinstance(value, str) and not value.isascii():
            value = _unicode(value, ev)
        return value

    def node(ev, path, depth, flow):
        nonlocal count
        count += 1
        if pos is not None:
            pos.value.setdefault(path, _mark(ev))
        kind = type(ev)
        if kind is Scalar:
            return scalar(ev, flow)
        if count > MAX_NODES or depth > MAX_C_DEPTH:
            raise _Fallback
        depth += 1
        flow = flow or bool(getattr(ev, "flow_style", False))
        if kind is SeqStart:
            out = []
            while True:
                ev = get()
                if type(ev) is SeqEnd:
                    return out
                out.append(node(ev, path + (len(out),) if pos is not None else path, depth, flow))
        if kind is not MapStart:
            raise _Fallback               # an alias
        mapping: dict = {}
        while True:
            ev = get()
            kind = type(ev)
            if kind is MapEnd:
                return mapping
            if kind is not Scalar:
                raise _Fallback           # a key that is a list, a mapping or an alias
            key = scalar(ev, flow)
            if not isinstance(key, str):
                key = str(key) if key is not None else "null"
            key = intern(key)             # 100k inputs share one "text", not 100k copies of it
            if key in mapping:
                raise _Fallback           # a duplicate key: the pure path names both places
            child = path
            if pos is not None:
                child = path + (key,)
                pos.key[child] = _mark(ev)
            mapping[key] = node(get(), child, depth, flow)

    if type(get()) is not yaml.StreamStartEvent:
        raise _Fallback
    ev = get()
    if type(ev) is yaml.StreamEndEvent:
        return None
    value = node(get(), (), 0, False)
    if type(get()) is not yaml.DocumentEndEvent or type(get()) is not yaml.StreamEndEvent:
        raise _Fallback                   # more than one document
    return value


def _load_c(text: str) -> tuple[Any, Positions]:
    """The C path: values now, positions on first use. _Fallback when the pure path must answer."""
    return _run_c(text, None), Positions(find=lambda: _positions_c(text))


def _positions_c(text: str) -> Positions:
    """Positions of a document the C path read (the same marks as the pure path's: a test compares)."""
    pos = Positions()
    with _no_gc():
        try:
            _run_c(text, pos)
        except _Fallback:                 # not expected (the values pass read this text): be exact anyway
            return _load_pure(text)[1]
    return pos


def _run_c(text: str, pos: Positions | None) -> Any:
    loader = _CLoader(text)
    try:
        return _from_events(loader, pos)
    except (yaml.YAMLError, YamlProblem, ValueError, IndexError, TypeError, RecursionError, MemoryError):
        raise _Fallback from None
    finally:
        loader.dispose()


def load(text: str, *, pure: bool | None = None) -> tuple[Any, Positions]:
    """Parse one YAML document into plain values and their positions. Raises YamlProblem.

    `pure` forces PyYAML's pure-Python path (default: $HARNESS_PURE_YAML=1); both give the
    same values, positions and errors."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlProblem(f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB", 1, 1,
                          "a spec should be small; put long input lists in a CSV or JSONL file and use `from:`")
    if pure is None:
        pure = os.environ.get(PURE_ENV) == "1"
    with _no_gc():
        if not pure and _CLoader is not None and not _PURE_ONLY.search(text, text.startswith("\ufeff")):
            try:
                return _load_c(text)
            except _Fallback:
                pass
        try:
            return _load_pure(text)
        except YamlProblem as problem:
            problem.excerpt = excerpt(text, problem.line, problem.col)
            raise


@contextlib.contextmanager
def _no_gc():
    """The cycle collector paused while the values are built: they hold no cycles, and collecting
    over 100k fresh containers again and again took three quarters of the C path's time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _load_pure(text: str) -> tuple[Any, Positions]:
    try:
        loader = _Loader(text)
    except yaml.reader.ReaderError as e:     # a control character: PyYAML gives only its index
        before = text[:e.position]
        line, col = before.count("\n") + 1, e.position - (before.rfind("\n") + 1) + 1
        raise YamlProblem(f"invalid YAML: the control character {e.character:#06x} is not allowed in YAML text",
                          line, col,
                          "delete it; to send it, write it as an escape in double quotes, e.g. \"\\a\"") from None
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
