"""Issue 25's planning changes keep every byte: a template that only prints fields fills without
Jinja and prints what Jinja prints; texts written while scanned, or inputs kept in memory or spooled to
a file, give the same folder; a run's manifest lists two payload files per cell however many requests
it has."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from harness.inputs.rows import CsvRows, Pairs
from harness.inputs.sets import _direct, _env, _fill
from tests.helpers import cli_env, run_cli, tree

ROWS = [{"text": "plain", "id": "7", "a": "x\ny", "b": "é \u2028 \\ \" 中文", "items": "it", "keys": "k", "_x": "u"},
        {"text": "", "id": "", "a": "{{ not a template }}", "b": "{% raw %}", "items": "", "keys": "", "_x": ""}]
TEMPLATES = ["{{ row.text }}", "t-{{ row.id }}", "{{row.a}}: {{ row.b }}", "{{ row.a }}{{ row.a }}", "  {{ row.b }}  ",
             "{{ row.items }}", "{{ row.keys }}", "{{ row._x }}", "{{ row.text }}\n", "x{{ row.a | upper }}",
             "{{ row['a'] }}", "a}}{{ row.a }}", "{{ row.missing }}", "{{ row.a }}" * 9, "{{ file.path }}"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_a_direct_template_prints_what_jinja_prints_or_is_left_to_jinja(template):
    pieces = _direct(template, "row")
    if pieces is None:
        return      # Jinja renders it, as before
    for row in ROWS:
        got = _fill(pieces, Pairs([("label", {"row": row})]), "row")
        if all(type(v) is str for v in row.values()):     # a CSV row: the same text from the reader's list
            assert _fill(pieces, CsvRows("t.csv", list(row), [1], [list(row.values())]), "row") == got
        try:
            expected = _env().from_string(template).render(row=row)
        except Exception:
            assert got is None            # Jinja's error is the one reported
            continue
        assert got == [expected], template


def test_templates_jinja_needs_are_left_to_it():
    assert _direct("{{ row.items }}", "row") is None          # Jinja prints the dict's method here
    assert _direct("{{ row.a | upper }}", "row") is None
    assert _direct("{{ row.text }}\n", "row") is None          # Jinja drops a trailing newline
    assert _direct("{{ row.a }}" * 9, "row") is None           # more fields than the budget allows unchecked
    assert _direct("{{ file.path }}", "row") is None and _direct("{{ file.path }}", "file") == ["", "path", ""]
    assert _fill(["", "n", ""], Pairs([("l", {"row": {"n": 5}})]), "row") is None    # a JSONL number: Jinja says it


def harness(tmp_path: Path, *args: str, **env: str):
    return run_cli(*args, cwd=tmp_path, env=cli_env(tmp_path / "home", tmp_path / "cache", **env))


def write(tmp_path: Path, text: str, ident: str = 't-{{ row.id }}', n: int = 45) -> None:
    rows = ["id,text,items"] + [f'{i},"caption {i}, ""quoted"" é 中文 \\ {{{{x}}}}",v{i}' for i in range(n)]
    (tmp_path / "rows.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "spec.yaml").write_text(f"version: 1\nname: s\nmodels: [{{name: qwen3-vl-embedding, dimensions: "
                                        f"[256, 512]}}]\ninputs:\n  - from: rows.csv\n    id: '{ident}'\n"
                                        f"    text: '{text}'\n", encoding="utf-8")


def payload_files(folder: Path) -> dict[str, bytes]:
    return {k: v for k, v in tree(folder).items() if k.startswith(("payloads/", "inputs.jsonl"))}


def test_direct_and_jinja_templates_write_the_same_bytes(tmp_path):
    outs = {}
    for name, text, ident in (("direct", "{{ row.text }}", "t-{{ row.id }}"),
                              ("jinja", "{{ row.text | string }}", "t-{{ row.id | string }}")):
        write(tmp_path, text, ident)
        r = harness(tmp_path, "run", "spec.yaml", "--output", name)
        assert r.returncode == 0, r.stderr
        outs[name] = payload_files(tmp_path / name / "s")
    assert outs["direct"] == outs["jinja"] and len(outs["direct"]) == 5
    body = json.loads(outs["direct"]["payloads/qwen3-vl-embedding-256/requests.jsonl"].split(b"\n")[0])
    assert body["input"]["contents"][1] == {"text": 'caption 1, "quoted" é 中文 \\ {{x}}'}


def test_texts_written_while_scanned_or_spooled_give_the_same_folder(tmp_path, monkeypatch):
    """A plan of texts is written while its inputs are scanned (in memory, or in unnamed temporary
    files from the start or past $HARNESS_SPOOL_MEMORY, shared by its files); other plans spool their
    inputs (pickled in chunks) and write them after. Every way gives the same folder, byte for byte."""
    from harness.plan import build
    from harness.plan.batching import Spool

    spilled, paths = [], []
    real = Spool._spill

    def spill(self):
        spilled.append(len(self._held))
        paths.append(self.path)
        real(self)

    monkeypatch.setattr(Spool, "_spill", spill)
    write(tmp_path, "{{ row.text }}", n=2500)
    assert harness(tmp_path, "run", "spec.yaml", "--output", "memory").returncode == 0
    assert harness(tmp_path, "run", "spec.yaml", "--output", "disk", HARNESS_SPOOL_MEMORY="0").returncode == 0
    rolled = []
    real_rollover = tempfile.SpooledTemporaryFile.rollover
    monkeypatch.setattr(tempfile.SpooledTemporaryFile, "rollover",
                        lambda self: rolled.append(self._rolled) or real_rollover(self))
    assert harness(tmp_path, "run", "spec.yaml", "--output", "rolled", HARNESS_SPOOL_MEMORY="5000").returncode == 0
    assert rolled.count(False) == 5        # inputs.jsonl and each cell's two files went on disk past 1,000 bytes
    assert spilled == []                                          # written while scanned: no spool at all
    monkeypatch.setattr(build, "reads_nothing_later", lambda spec: False)    # as a plan of images goes
    assert harness(tmp_path, "run", "spec.yaml", "--output", "held").returncode == 0
    assert spilled == []                                          # a few thousand texts stay in memory
    spooled = harness(tmp_path, "run", "spec.yaml", "--output", "spooled", HARNESS_SPOOL_MEMORY="0")
    assert spooled.returncode == 0, spooled.stderr
    assert spilled == [1024, 1024, 452] and all(p == paths[0] for p in paths)   # pickled in chunks, one file
    folders = [tmp_path / name / "s" for name in ("memory", "disk", "rolled", "held", "spooled")]
    files = [payload_files(f) for f in folders]
    assert all(f == files[0] for f in files) and len(files[0]) == 5
    digest = {json.loads((f / "manifest.json").read_text())["digest"] for f in folders}
    assert len(digest) == 1
    assert not paths[0].exists()                                  # the spool went with the plan
    verified = harness(tmp_path, "verify", str(folders[0]))
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_the_manifest_lists_two_payload_files_per_cell_however_many_requests(tmp_path):
    sizes = {}
    for n in (45, 450):
        write(tmp_path, "{{ row.text }}", n=n)
        (tmp_path / "spec.yaml").write_text((tmp_path / "spec.yaml").read_text() + "batching: {max_contents: 2}\n")
        r = harness(tmp_path, "run", "spec.yaml", "--output", f"n{n}")
        assert r.returncode == 0, r.stderr
        folder = tmp_path / f"n{n}" / "s"
        manifest = json.loads((folder / "manifest.json").read_text())
        payloads = sorted(k for k in manifest["files"] if k.startswith("payloads/"))
        assert payloads == [f"payloads/qwen3-vl-embedding-{d}/{f}" for d in (256, 512)
                            for f in ("index.jsonl", "requests.jsonl")]
        assert manifest["cells"][0]["requests"] == -(-n // 2)
        sizes[n] = len(json.dumps(manifest["files"]))
        last = harness(tmp_path, "payload", str(folder), "qwen3-vl-embedding-512", str(-(-n // 2)))
        assert last.returncode == 0 and json.loads(last.stdout)["input"]["contents"][-1]["text"].startswith(
            f"caption {n - 1},")
    assert sizes[450] == sizes[45]        # ten times the requests, the same file table


def test_text_token_estimate_counts_ascii_characters_as_before():
    """estimate.text_tokens counts ASCII characters in C now; the same numbers as one at a time."""
    import random

    from harness.catalog.estimate import text_tokens

    def one_at_a_time(text: str) -> int:
        ascii_chars = sum(1 for c in text if ord(c) < 128)
        return max(1, (ascii_chars + 3) // 4 + (len(text) - ascii_chars))

    rng = random.Random(25)
    for _ in range(3000):
        text = "".join(chr(rng.choice([rng.randrange(128), rng.randrange(128, 0x110000)]))
                       for _ in range(rng.randrange(40)))
        assert text_tokens(text) == one_at_a_time(text), repr(text)


def test_a_chunk_of_texts_counts_the_tokens_its_texts_count_one_by_one():
    """estimate.texts_tokens (a TextRun's estimate) is text_tokens summed, ASCII chunks or not."""
    import random

    from harness.catalog.estimate import text_tokens, texts_tokens

    rng = random.Random(26)
    for _ in range(500):
        texts = ["".join(chr(rng.choice([rng.randrange(32, 128), rng.randrange(128, 0xD800)]))
                         for _ in range(rng.randrange(1, 40))) for _ in range(rng.randrange(1, 30))]
        assert texts_tokens(texts) == sum(map(text_tokens, texts))
        plain = [t.encode("ascii", "ignore").decode() or "x" for t in texts]
        assert texts_tokens(plain) == sum(map(text_tokens, plain))


def test_a_run_of_texts_is_cut_into_requests_where_the_batcher_cuts_them():
    """CellWriter.add_texts cuts every `size` texts: the Batcher's own cut, for every model of the
    catalog, with and without `batching.max_contents`, fused or not."""
    from harness.catalog.load import load_catalog
    from harness.inputs.types import TextRun, text_input
    from harness.plan.batching import Batcher
    from harness.plan.cells import Cell
    from harness.plan.write import CellWriter

    for model in load_catalog().models.values():
        for max_contents in (None, 1, 3, 7, 50):
            for params in ({}, {"enable_fusion": True}):
                cell = Cell("c", model, 0, None, params, "http://x", None, True, ("models", 0))
                batcher = Batcher(cell, max_contents)
                cut = [len(b.inputs) for i in range(60)
                       for b in batcher.add(text_input(f"i{i}", "t", ("inputs", 0), None))]
                cut += [len(b.inputs) for b in batcher.close()]
                writer = CellWriter(cell, max_contents)
                for start in range(0, 60, 25):      # runs of 25, 25 and 10 texts
                    ids = [f"i{i}" for i in range(start, min(start + 25, 60))]
                    writer.add_texts(TextRun(("inputs", 0), ids, ["t"] * len(ids), None))
                stats = writer.close()
                assert (stats.requests, stats.contents) == (len(cut), 60), (model.name, max_contents, params)
                assert cut == [writer.size] * (60 // writer.size) + ([60 % writer.size] if 60 % writer.size else [])
