"""The house as designed: stages in order, no import circles, no module over 450 lines, and
docs/architecture.md's module table naming every module there is.

Read from the code (`ast`), imports inside functions included: an import hidden in a function
still ties the two modules together."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "harness"

# The stages, lowest first. A module may import its own stage and the ones below it.
STAGES = [
    {"harness", "errors", "evidence", "words"},  # foundations: exit codes and problems, hashing, counts in words
    {"folder"},                                 # the run folder's records, reader and writer: a leaf
    {"spec"},                                   # YAML → Spec
    {"catalog"},                                # model facts and prices
    {"inputs"},                                 # input types, sets, media, confinement, data sets
    {"providers"},                              # wire protocols, credentials, uploads
    {"plan"},                                   # cells, batching, payloads
    {"execute"},                                # the network step
    {"checks"},                                 # assertions and metrics
    {"report"},                                 # renderers, finalize
    {"audit", "export"},                        # verify, re-execute, signing, diff; Milvus
    {"runner"},                                 # orchestration
    {"commands", "cli", "__main__"},            # the command line
]
# Imports that run back up, each with why (at most two, and each a known debt).
UPWARD: dict[tuple[str, str], str] = {}
MAX_LINES = 450


def modules() -> dict[str, Path]:
    out = {}
    for path in HARNESS.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def stage(module: str) -> int:
    top = module.split(".")[1] if module != "harness" else "harness"
    for rank, names in enumerate(STAGES):
        if top in names:
            return rank
    raise AssertionError(f"{module} belongs to no stage: add its package to STAGES (and docs/architecture.md)")


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The harness modules `path` imports, anywhere in it (`from harness.x import y` counts as
    harness.x.y when that is a module, else harness.x)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.ImportFrom) and node.module and node.level == 0
                and node.module.split(".")[0] == "harness"):
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "harness")
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(path, known) - {name} for name, path in known.items()}


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    assert circles(graph()) == []


def test_no_module_imports_a_later_stage():
    upward = sorted((a, b) for a, deps in graph().items() for b in deps
                    if stage(b) > stage(a) and not (a.startswith("harness.") and b == "harness"))
    assert [u for u in upward if u not in UPWARD] == []
    assert len(UPWARD) <= 2


def test_the_checker_sees_a_circle_and_an_upward_import():
    g = {"harness.folder.a": {"harness.report.b"}, "harness.report.b": {"harness.folder.a"}}
    assert circles(g) == [["harness.folder.a", "harness.report.b"]]
    assert stage("harness.report.b") > stage("harness.folder.a")


def test_no_module_is_over_450_lines():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def is_face(path: Path) -> bool:
    """A package's face: an __init__.py that only imports and hands names on (defines nothing)."""
    return not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                   for n in ast.parse(path.read_text(encoding="utf-8")).body)


def test_the_architecture_doc_names_every_module_and_only_those():
    doc = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    table = doc.split("## Modules", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`harness/([\w/]+\.py)`", table))
    actual = {p.relative_to(HARNESS).as_posix() for p in HARNESS.rglob("*.py")
              if p.name != "__init__.py" or not is_face(p)}
    assert sorted(actual - named) == [], "modules missing from docs/architecture.md's table"
    assert sorted(named - actual) == [], "docs/architecture.md names modules that do not exist"


@pytest.mark.parametrize("folder", ["spec", "catalog", "inputs", "plan", "providers", "execute", "checks",
                                    "report", "folder", "audit", "export", "commands"])
def test_each_stage_is_a_package(folder):
    assert (HARNESS / folder / "__init__.py").is_file()
