"""Text runs: a plan of texts checked and written a chunk at a time writes what the per-input path writes.

`harness.plan.build.TEXT_RUNS` (default True) sends a spec whose inputs are texts only (inline `text:`
entries and `from:` CSV/JSONL sets with a `text:` template) through the chunk path; False keeps the
per-input path. Each seeded spec here is run (plan only) once each way, into two output folders: the
same exit code, the same words on stdout/stderr, and the same bytes in every file the run wrote, save
the few that carry the clock (see `comparable`). `harness verify` of the folder passes either way
(verify re-derives the plan, through the same path).

The specs mix CSV/TSV/JSONL sets, inline texts, several sets in one spec, default and templated ids,
plain, two-field, Jinja-filtered and block templates, `models:` on an entry, `modalities:` on a model,
`batching`, and 0 to ~1,500 rows (so chunks of 512 rows and the batches of every model end
anywhere), with texts of every awkward kind: non-ASCII, JSON escapes, control characters, U+2028, the
chunk renderer's own separator (U+001E), leading and trailing spaces, texts over a model's token
limit (a warning), file names that need JSON escaping. Odd seeds add faults: duplicate ids (in a
chunk, across chunks, across sets, against an inline id), empty and blank texts, invalid ids, CSV
rows of the wrong width, a template field a row lacks, a null, a lone surrogate, a broken JSON line,
a payload budget too small.

The flag is set with raising=False, so the file runs (trivially) on code without it. Both sides
read the rows the same way (harness.inputs.rows and sets): what is compared is how the chunks are
checked and written, not the reading.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from tests.helpers import tree

FLAG = "harness.plan.build.TEXT_RUNS"
SEEDS = range(25)
CHUNK = 512          # harness.inputs.sets.CHUNK: sizes around it put a chunk boundary in a set

# The models of the catalog that take texts, with the dimensions each may be given. Their batching
# differs (qwen2.5-vl: 4 items a request, tongyi-embedding-vision-plus: no item cap, a token cap)
# and so do their text limits (multimodal-embedding-v1: 512 tokens, tongyi: 1,024, qwen: 32,000).
MODELS = {
    "qwen3-vl-embedding": [2560, 1024, 256],
    "qwen2.5-vl-embedding": [1024, 512],
    "tongyi-embedding-vision-plus": None,               # a fixed size: no `dimensions:`
    "tongyi-embedding-vision-flash-2026-03-06": [768, 64],
    "multimodal-embedding-v1": None,
}

# Pieces texts are made of: non-ASCII (CJK, accents, emoji with modifiers and joiners), what JSON
# escapes (quotes, backslashes, tabs, newlines, control characters), what JavaScript does not take
# raw (U+2028/U+2029), what Unicode line-splitting sees as line ends (U+0085), Jinja syntax that must
# stay text, CSV syntax, and U+001E, which the chunk renderer puts between rows.
PIECES = ["cat", "a dog", "the quick brown fox", "猫が好き", "中文文本", "한국어", "café", "naïve", "Ünïcödé",
          "🐱", "👍🏽", "👨‍👩‍👧", '"quoted"', "it's", "back\\slash", "\\u0041", "tab\there", "ctl\x01x", "\x7f",
          "line\u2028sep", "para\u2029sep", "nel\x85x", "zw\u200bsp", "\ufeffbom", "{{ not.a.template }}",
          "{% raw %}", "a,b;c", "x\x1ey", "<b>&amp;</b>", "ß", "ﬁ", "İ", "new\nline", "cr\r\nlf"]
JSONL_ONLY = ["nul\x00x", "\x1f", "\ud83d\ude00"]     # a NUL; an escaped surrogate pair is one character

# Only a chunk whose ids and texts are filled straight from the rows' strings (`{{ row.id }}`,
# `t-{{ row.id }}`; `{{ row.text }}`, `Q: {{ row.text }}`, two fields) and whose rows all keep the
# rules is a text run, so those templates come most often; the others (the default id rule, Jinja
# filters, `index`, a block tag) take the per-row path on both sides, and are here for the mix.
TEXT_TEMPLATES = ["{{ row.text }}", "{{ row.text }}", "Q: {{ row.text }}", "Q: {{ row.text }}",
                  "{{ row.title }} | {{ row.text }}", "{{row.text}}", "{{ row.text | upper }}",
                  "{{ row.text }}{% if row.title %} ({{ row.title }}){% endif %}", "{{ row.text }} #{{ index }}"]
ID_TEMPLATES = ["{{ row.id }}", "{{ row.id }}", "t-{{ row.id }}", "t-{{ row.id }}", None, None,
                "{{ row.id | lower }}", "{{ row.id }}-{{ index }}", "x{{ index }}"]
SIZES = [0, 1, 2, 3, 7, 20, 64, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 3, 1500]
# (No backslash: a spec's input path holding one is refused, as `harness verify` could not re-derive it.)
ODD_NAMES = ['my "texts"', "sp ace", "données 猫", "tab\tname", "ünï-💡", "it's (1) #2 & co"]
# One fault per odd seed, in turn, so every kind is met whatever the random draws. The first three
# share their seeds with the last three (seeds 1, 3, 5): a too-small budget stops the scan where it
# is crossed, and a broken JSON line drops its whole set, hiding faults after them.
FAULTS = ["odd-name", "empty-text", "blank-text", "dup-across-chunks", "dup-across-sets", "dup-inline",
          "bad-id", "wide-row", "narrow-row", "missing-field", "surrogate", "dup-in-chunk", "budget",
          "null-text", "bad-json-line"]
JSONL_FAULTS = {"surrogate", "null-text", "missing-field", "bad-json-line"}     # need a JSONL set
CSV_FAULTS = {"wide-row", "narrow-row"}                                         # need a CSV/TSV set
ID_FAULTS = {"dup-in-chunk", "dup-across-chunks", "bad-id"}                     # need an `id` column
RUN_FAULTS = ID_FAULTS | {"dup-across-sets", "dup-inline", "budget", "empty-text", "blank-text",
                          "wide-row", "narrow-row"}                             # met in a chunk of text runs


@dataclass
class Case:
    spec: Path
    args: list[str] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)        # what the case holds (for the coverage test)


def _text(rng: random.Random, jsonl: bool) -> str:
    pool = PIECES + (JSONL_ONLY if jsonl else [])
    text = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 4)))
    r = rng.random()
    if r < 0.1:
        text = "  " + text
    elif r < 0.2:
        text = text + " \t"
    # str.strip() takes U+001C..U+001F, U+0085 and U+2028 for white space: such a text alone is
    # "empty" to the harness, a fault; the faulty seeds put those in on purpose
    return text if text.strip() else text + " ok"


def _long_text(rng: random.Random) -> str:
    """Over 1,024 estimated tokens (one per CJK character, one per 4 ASCII ones): over tongyi's
    and multimodal-embedding-v1's text limits, a warning, not an error."""
    return rng.choice(["長" * rng.randint(1030, 1300), "word " * rng.randint(900, 1100), "猫🐱" * 600])


def _final_id(template: str | None, row: dict, index: int, stem: str) -> str:
    """The id a row gets (what sets.input_set renders), for the faults that aim at one."""
    if template is None:
        return str(row["id"]) if row.get("id") not in (None, "") else f"{stem}-{index}"
    rid = str(row.get("id"))
    return {"{{ row.id }}": rid, "t-{{ row.id }}": f"t-{rid}", "{{ row.id | lower }}": rid.lower(),
            "{{ row.id }}-{{ index }}": f"{rid}-{index}", "x{{ index }}": f"x{index}"}[template]


def _write_set(folder: Path, rng: random.Random, k: int, n: int, faults: set[str], tags: set[str],
               odd: bool, default_ids: bool = False) -> tuple[dict, list[str]]:
    """One input set of `n` rows: (its spec entry, the ids its rows get). `default_ids`: no `id:`, an
    `id` field, empty in some rows (so those are named after the file and row)."""
    fmt = rng.choice(["csv", "csv", "tsv", "jsonl", "jsonl"])
    if k == 0 and faults & JSONL_FAULTS:
        fmt = "jsonl"
    elif k == 0 and faults & CSV_FAULTS:
        fmt = rng.choice(["csv", "tsv"])
    stem = (rng.choice(ODD_NAMES) + f"-{k}") if odd else f"set_{k}"
    ext = {"csv": ".csv", "tsv": ".tsv", "jsonl": rng.choice([".jsonl", ".ndjson"])}[fmt]
    sub = rng.choice(["", "", "data/", "data/sub dir/"])
    name = f"{sub}{stem}{ext}"
    tags.add(fmt)
    if odd:
        tags.add("odd-name")
    # a set of more than a chunk mostly gets the templates of text runs, so most of its rows go as runs
    # (and so does a set a fault is aimed at, mostly: the fault must send a run back to the rows)
    direct = rng.random() < (0.85 if faults & RUN_FAULTS else 0.8 if n > CHUNK else 0)
    id_tmpl = rng.choice(ID_TEMPLATES[:4] if direct else ID_TEMPLATES)
    if faults & ID_FAULTS and not direct:      # ids the rows' `id` field makes, for the faults to aim at
        id_tmpl = rng.choice(["{{ row.id }}", "t-{{ row.id }}", None, "{{ row.id | lower }}"])
    if default_ids:
        id_tmpl = None
    elif odd and id_tmpl is None and "odd-name" not in faults:
        id_tmpl = "t-{{ row.id }}"      # the default id rule names rows after the file: no valid id from an odd name
    text_tmpl = rng.choice(TEXT_TEMPLATES[:6] if direct else TEXT_TEMPLATES)
    prefix = rng.choice(["a", "B", "r", "Q"]) + str(k)      # a prefix per set keeps the sets' ids apart
    has_id = id_tmpl is not None or default_ids or bool(faults & ID_FAULTS) or rng.random() < 0.7
    has_title = "title" in text_tmpl or rng.random() < 0.5
    int_ids = fmt == "jsonl" and not direct and rng.random() < 0.3     # JSONL ids may be numbers (Jinja prints them)
    rows = []
    for i in range(n):
        row = {}
        if has_id:
            row["id"] = 1000 * k + i if int_ids else f"{prefix}{i}"
        row["text"] = _text(rng, fmt == "jsonl")
        if fmt == "jsonl" and not direct and rng.random() < 0.02:
            row["text"] = rng.choice([3.5, 42, True])         # not a str: Jinja renders it
        if has_title:
            row["title"] = "" if rng.random() < 0.3 else _text(rng, fmt == "jsonl")
        rows.append(row)
    if n and rng.random() < 0.2:       # a text or two over a model's token limit: a warning
        for _ in range(rng.randint(1, 2)):
            rows[rng.randrange(n)]["text"] = _long_text(rng)
        tags.add("long-text")
    if id_tmpl is None and has_id and n and (default_ids or rng.random() < 0.5):
        rows[rng.randrange(n)]["id"] = ""                    # the default id rule for that row only
        tags.add("empty-id-field")
    # faults aimed at rows
    if n >= 2 and "dup-in-chunk" in faults:
        i = rng.randrange(n - 1)
        j = rng.randrange(i + 1, min(n, i + CHUNK))
        rows[j]["id"] = rows[i].get("id", "")
        tags.add("dup-in-chunk")
    if n > CHUNK and "dup-across-chunks" in faults:
        rows[rng.randrange(CHUNK, n)]["id"] = rows[rng.randrange(CHUNK)].get("id", "")
        tags.add("dup-across-chunks")
    if n and "empty-text" in faults:
        rows[rng.randrange(n)]["text"] = ""
        tags.add("empty-text")
    if n and "blank-text" in faults:
        rows[rng.randrange(n)]["text"] = rng.choice([" ", " \t ", "\n", "\u2028", "\x1f" if fmt == "jsonl" else "\x85"])
        tags.add("blank-text")
    if n and "bad-id" in faults and has_id:
        rows[rng.randrange(n)]["id"] = "bad id!"
        tags.add("bad-id")
    if n and "surrogate" in faults and fmt == "jsonl":
        rows[rng.randrange(n)]["text"] = "lone \ud800 surrogate"
        tags.add("surrogate")
    if n and "null-text" in faults and fmt == "jsonl":
        rows[rng.randrange(n)]["text"] = None
        tags.add("null-text")
    if n and "missing-field" in faults and fmt == "jsonl":
        for _ in range(rng.choice([1, 3, 25])):        # 25: past the 20 row errors a set reports
            rows[rng.randrange(n)].pop("text", None)
        tags.add("missing-field")
    ids = [_final_id(id_tmpl, row, i + 1, Path(name).stem) for i, row in enumerate(rows)]
    # the file, with blank lines and broken lines put in between rows
    lines: list[str] = []
    if fmt == "jsonl":
        for row in rows:
            line = json.dumps(row, ensure_ascii=rng.random() < 0.5)
            if not line.isascii():
                try:
                    line.encode("utf-8")
                except UnicodeEncodeError:      # a surrogate written raw is not UTF-8: escape it
                    line = json.dumps(row)
            lines.append(line + "\n")
    else:
        header = [c for c in ("id", "text", "title") if rows and c in rows[0]] or \
                 (["id"] if has_id else []) + ["text"] + (["title"] if has_title else [])
        rng.shuffle(header)
        buf = io.StringIO()
        writer = csv.writer(buf, dialect="excel-tab" if fmt == "tsv" else "excel")
        writer.writerow(header)
        lines.append(buf.getvalue())
        for row in rows:
            buf.seek(0), buf.truncate()
            writer.writerow([row.get(c, "") for c in header])
            lines.append(buf.getvalue())
    body = lines[1:] if fmt != "jsonl" else lines
    for _ in range(rng.choice([0, 0, 1, 3])):
        body.insert(rng.randint(0, len(body)), rng.choice(["\n", "\r\n"]) if fmt == "jsonl" else "\r\n")
        tags.add("blank-lines")
    if body and fmt != "jsonl" and ("wide-row" in faults or "narrow-row" in faults):
        sep = "\t" if fmt == "tsv" else ","
        width = len(lines[0].split(sep)) + (1 if "wide-row" in faults else -1)
        for _ in range(rng.choice([1, 2, 22])):          # 22: past the 20 row errors a set reports
            body.insert(rng.randint(0, len(body)), sep.join(["w"] * max(width, 1)) + "\r\n")
        tags.add("wide-row" if "wide-row" in faults else "narrow-row")
    if body and fmt == "jsonl" and "bad-json-line" in faults:
        body.insert(rng.randint(0, len(body)), '{"id": "x", "text": \n')
        tags.add("bad-json-line")
    text = ("".join(lines[:1]) if fmt != "jsonl" else "") + "".join(body)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    bom = "\ufeff" if fmt != "jsonl" and rng.random() < 0.2 else ""
    path.write_bytes((bom + text).encode("utf-8", "surrogatepass"))
    entry: dict = {"from": name, "text": text_tmpl}
    if id_tmpl is not None:
        entry["id"] = id_tmpl
    if rng.random() < 0.15:
        entry["format"] = "jsonl" if fmt == "jsonl" else "csv"
    tags.update({f"text:{text_tmpl}", f"id:{id_tmpl}"})
    if n > CHUNK:
        tags.add("over-a-chunk")
    if n == 0:
        tags.add("no-rows")
    if direct:
        tags.add("direct")
    return entry, ids


def make_case(seed: int, folder: Path) -> Case:
    """The spec of `seed` and its files, in `folder` (deterministic in the seed)."""
    rng = random.Random(seed)
    tags: set[str] = set()
    faults: set[str] = set()
    if seed % 2:     # the odd seeds below 25 meet each fault once at least
        turn = seed // 2 % len(FAULTS)
        faults.update(FAULTS[i] for i in (turn, turn + 12) if i < len(FAULTS))
    # models: one to three, some with their own dimensions or `modalities: [text]`
    names = rng.sample(sorted(MODELS), rng.choice([1, 2, 2, 3, 3]))
    models: list = []
    for name in names:
        dims = MODELS[name]
        entry: dict = {"name": name}
        if dims and rng.random() < 0.6:
            entry["dimensions"] = sorted(rng.sample(dims, rng.randint(1, 2)), reverse=True)
        if rng.random() < 0.3:
            entry["modalities"] = ["text"] if rng.random() < 0.7 else ["text", "image"]
            tags.add("modalities")
        models.append(entry if len(entry) > 1 else name)
    spec: dict = {"version": 1, "name": f"tr-{seed}", "models": models, "inputs": []}
    if rng.random() < 0.4:
        spec["batching"] = {"max_contents": rng.choice([1, 2, 3, 7, 19, 20])}
        tags.add("batching")
    # input sets: at most one large one, to keep the file's time down
    n_sets = rng.choice([1, 1, 2, 2, 3])
    big = rng.random() < 0.45 or faults & {"dup-across-chunks"}
    all_ids: list[str] = []
    for k in range(n_sets):
        n = rng.choice([s for s in SIZES if s > CHUNK]) if big and k == 0 else rng.choice(SIZES[:7])
        default_ids = seed % 5 == 2 and k == n_sets - 1
        odd = "odd-name" in faults and k == n_sets - 1 or rng.random() < 0.1 and not default_ids
        entry, ids = _write_set(folder, rng, k, n, faults, tags, odd, default_ids)
        # (an entry's `models:` sends its rows one by one on both sides: rare on a set of text runs)
        if len(names) > 1 and rng.random() < (0.05 if "id" in entry and (n > CHUNK or faults) else 0.25):
            entry["models"] = rng.sample(names, rng.randint(1, len(names) - 1))
            tags.add("entry-models")
        spec["inputs"].append(entry)
        all_ids += ids
    if "dup-across-sets" in faults and all_ids:
        # a second set that reuses ids of the first: its rows copy a few of the ids rendered so far
        reused = rng.sample(all_ids, min(3, len(all_ids)))
        name = "again.csv"
        with (folder / name).open("w", encoding="utf-8", newline="") as f:
            w = csv.writer(f)
            w.writerow(["id", "text"])
            w.writerows([[i, f"again {i}"] for i in reused] + [["fresh-1", "fresh"]])
        again = {"from": name, "text": "{{ row.text }}"}
        if seed % 4 == 1:        # the rows as a text run (else one by one, by the default id rule)
            again["id"] = "{{ row.id }}"
        spec["inputs"].append(again)
        tags.add("dup-across-sets")
    # inline texts, before, between and after the sets
    for _ in range(rng.choice([0, 0, 1, 2, 4])):
        item: dict = {"text": _text(rng, False)}
        if rng.random() < 0.6:
            item["id"] = f"inline-{rng.randrange(10**6)}"
        if len(names) > 1 and rng.random() < 0.2:
            item["models"] = [rng.choice(names)]
        spec["inputs"].insert(rng.randint(0, len(spec["inputs"])), item)
        tags.add("inline")
    if "dup-inline" in faults and all_ids:
        spec["inputs"].append({"id": rng.choice(all_ids), "text": "an inline text whose id a row took"})
        tags.add("dup-inline")
    if faults and rng.random() < 0.2:     # two inline texts alike, without ids: the same default id
        spec["inputs"] += [{"text": "twice"}, {"text": "twice"}]
        tags.add("dup-default-id")
    args: list[str] = []
    if "budget" in faults:
        args += ["--max-payload-bytes", str(rng.choice([1, 2000, 50_000, 300_000]))]
        tags.add("budget")
    if rng.random() < 0.15:
        args += ["--model", rng.choice(names)]
        tags.add("--model")
    if rng.random() < 0.2:
        args += ["--verbose"]
    text = yaml.safe_dump(spec, allow_unicode=rng.random() < 0.5, sort_keys=False, width=rng.choice([80, 10**6]))
    if yaml.safe_load(text) != spec:     # PyYAML folds a long line at U+0085 when it may print it raw
        text = yaml.safe_dump(spec, sort_keys=False, width=10**6)
    assert yaml.safe_load(text) == spec        # the spec says what was meant (escapes survive the dump)
    path = folder / rng.choice(["spec.yaml", "spec.yml"])
    path.write_text(text, encoding="utf-8")
    return Case(path, args, tags | {f"fault:{f}" for f in faults})


# -- comparing two runs ----------------------------------------------------------------------

_JUNIT_STAMP = re.compile(rb' timestamp="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d"')
_RUN_TIMES = re.compile(rb'("(?:started|finished)": )"[^"]*"|("seconds": )[0-9.e+-]+')


def comparable(run: Path) -> dict[str, bytes]:
    """Every file of a run folder, as bytes, with only the clock taken out:

    - run.json: `started`, `finished` (wall-clock times) and `seconds` (how long the run took);
      the rest of it (executed, host, platform, python) is compared. verify does not hash run.json
      either ("times and host facts").
    - junit.xml: each `<testsuite timestamp="...">` (the run's start, to the second). Its `time=`
      attributes are durations of execution, 0.000 in a dry run, and stay compared.
    - manifest.json: the sha256 of junit.xml under `files` (it hashes that timestamp; it is checked
      against the file itself here instead). The manifest's `digest` leaves junit.xml out, so it,
      `inputs.sha256`, `cells` and every other file's hash are compared as they are.

    Every other file (inputs.jsonl, payloads/*/requests.jsonl and index.jsonl, spec.yaml,
    summary.json, validate.txt, report.md, report.html) is compared byte for byte.
    """
    files = tree(run)
    manifest = json.loads(files["manifest.json"])
    for name, digest in manifest["files"].items():       # the manifest holds what is in the folder
        assert hashlib.sha256(files[name]).hexdigest() == digest, name
    junit = manifest["files"].get("junit.xml")
    if junit is not None:
        files["manifest.json"] = files["manifest.json"].replace(junit.encode(), b"<sha256 of junit.xml>")
    if "junit.xml" in files:
        files["junit.xml"] = _JUNIT_STAMP.sub(b' timestamp="<start>"', files["junit.xml"])
    if "run.json" in files:
        files["run.json"] = _RUN_TIMES.sub(lambda m: (m.group(1) or m.group(2)) + b"<time>", files["run.json"])
    return files


def first_difference(a: bytes, b: bytes) -> str:
    la, lb = a.splitlines(), b.splitlines()
    for n, (x, y) in enumerate(zip(la, lb), start=1):
        if x != y:
            return f"line {n}:\n  {x[:400]!r}\n  {y[:400]!r}"
    return f"{len(la)} lines vs {len(lb)}"


def assert_same_files(a: Path, b: Path) -> None:
    fa, fb = comparable(a), comparable(b)
    assert sorted(fa) == sorted(fb)
    # the inputs and the payloads first: they are what the chunk path writes itself
    first = [n for n in fa if n == "inputs.jsonl" or n.startswith("payloads/")]
    assert "inputs.jsonl" in first
    for name in first + [n for n in sorted(fa) if n not in first]:
        assert fa[name] == fb[name], f"{name} differs at {first_difference(fa[name], fb[name])}"


# -- the tests -------------------------------------------------------------------------------

def _run(cli, monkeypatch, case: Case, out: Path, text_runs: bool):
    with monkeypatch.context() as m:
        if not text_runs:
            m.setattr(FLAG, False, raising=False)
        return cli("run", case.spec.name, "--output", out.name, *case.args, cwd=case.spec.parent)


def _verify(cli, monkeypatch, run: Path, text_runs: bool):
    with monkeypatch.context() as m:
        if not text_runs:
            m.setattr(FLAG, False, raising=False)
        return cli("verify", str(run), cwd=run.parents[1])


@pytest.mark.parametrize("seed", SEEDS)
def test_text_runs_write_what_the_per_input_path_writes(tmp_path, cli, monkeypatch, seed):
    project = tmp_path / "project"
    project.mkdir()
    case = make_case(seed, project)
    outs = {True: project / "out-chunks", False: project / "out-inputs"}
    order = (True, False) if seed % 2 else (False, True)      # neither side always runs first
    results = {flag: _run(cli, monkeypatch, case, outs[flag], flag) for flag in order}

    def words(r, flag):
        # the output folder's name is the one difference allowed (absolute, then relative)
        return [s.replace(str(outs[flag]), "<OUT>").replace(outs[flag].name, "<OUT>") for s in (r.stdout, r.stderr)]

    fast, slow = results[True], results[False]
    assert fast.returncode == slow.returncode, (fast.stderr, slow.stderr)
    assert words(fast, True) == words(slow, False)
    folders = {flag: [p for p in outs[flag].iterdir()] if outs[flag].exists() else [] for flag in outs}
    assert len(folders[True]) == len(folders[False]) <= 1
    if not folders[True]:
        assert fast.returncode != 0, fast.stdout       # a run that passes writes its folder
        return
    (run,), (other,) = folders[True], folders[False]
    assert run.name == other.name == f"tr-{seed}"
    assert_same_files(run, other)
    # verify re-derives the plan: through the chunk path, and through the per-input path
    before = tree(run)
    verified = {}
    for flag in (True, False):
        r = verified[flag] = _verify(cli, monkeypatch, run, flag)
        assert r.returncode == 0, (flag, r.stdout, r.stderr)
        assert r.stdout.startswith(f"verified: {run}"), r.stdout
    assert (verified[True].stdout, verified[True].stderr) == (verified[False].stdout, verified[False].stderr)
    assert tree(run) == before                          # verify reads, never writes


def test_the_seeds_meet_every_kind_of_input_and_fault(tmp_path):
    """The generator's coverage, so a change to it cannot quietly drop what the differential needs."""
    tags: set[str] = set()
    for seed in SEEDS:
        folder = tmp_path / str(seed)
        folder.mkdir()
        tags |= make_case(seed, folder).tags
    wanted = {"csv", "tsv", "jsonl", "inline", "batching", "modalities", "entry-models", "over-a-chunk",
              "long-text", "blank-lines", "odd-name", "empty-id-field", "no-rows", "direct", "--model", "id:None",
              *(f"text:{t}" for t in TEXT_TEMPLATES), *(f"fault:{f}" for f in FAULTS), *FAULTS}
    assert wanted - tags == set()


ODD_FILES = ['data/my "texts" été\u2028猫\x7f.csv', "data/sp ace\ttab ✓.jsonl"]


def test_the_from_of_each_row_is_its_file_name_json_escaped(tmp_path, cli, monkeypatch):
    """inputs.jsonl records each row's `from` ("<file> row N" / "<file> line N") escaped as JSON
    escapes it (quotes, tabs; non-ASCII, U+2028 and DEL as themselves), the same way on
    both paths, over more rows than a chunk (the text runs write a run's labels themselves)."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    csv_name, jsonl_name = ODD_FILES
    n = CHUNK + 40
    with (project / csv_name).open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text"])
        w.writerows([[f"c{i}", f"csv text {i} \"q\" é"] for i in range(n)])
    with (project / jsonl_name).open("w", encoding="utf-8") as f:
        f.writelines(json.dumps({"id": f"j{i}", "text": f"jsonl text {i} \\ 猫"}) + "\n" for i in range(n))
    spec = {"version": 1, "name": "odd-names", "models": ["qwen3-vl-embedding"],
            "inputs": [{"from": csv_name, "id": "t-{{ row.id }}", "text": "{{ row.text }}"},
                       {"from": jsonl_name, "id": "{{ row.id }}", "text": "Q: {{ row.text }}"}]}
    (project / "spec.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    lines = {}
    for flag in (True, False):
        case = Case(project / "spec.yaml")
        r = _run(cli, monkeypatch, case, project / f"out-{flag}", flag)
        assert r.returncode == 0, r.stdout + r.stderr
        lines[flag] = (project / f"out-{flag}" / "odd-names" / "inputs.jsonl").read_bytes().splitlines()
    assert lines[True] == lines[False]
    expected = [f"{csv_name} row {i + 1}" for i in range(n)] + [f"{jsonl_name} line {i + 1}" for i in range(n)]
    assert len(lines[True]) == len(expected)
    for line, label in zip(lines[True], expected):
        assert json.loads(line)["from"] == label
        assert b'"from":' + json.dumps(label, ensure_ascii=False).encode("utf-8") + b"," in line, line


@pytest.mark.parametrize("seed", SEEDS[::3])     # clean and faulty; the writer they share is run on every seed above
def test_plan_and_validate_count_what_the_per_input_path_counts(tmp_path, cli, monkeypatch, seed):
    """`harness plan` and `harness validate` count a plan of texts while it is scanned (`write.counting`):
    the same cells, requests, contents, estimates and problems as counting spooled inputs afterwards."""
    project = tmp_path / "project"
    project.mkdir()
    case = make_case(seed, project)
    args = [a for a in case.args if a != "--verbose"]      # a `run` flag
    seen = {}
    for flag in (True, False):
        with monkeypatch.context() as m:
            if not flag:
                m.setattr(FLAG, False, raising=False)
            seen[flag] = [(r.returncode, r.stdout, r.stderr) for r in
                          (cli(command, case.spec.name, "--json", *args, cwd=project)
                           for command in ("plan", "validate"))]
    assert seen[True] == seen[False]
    if seed % 2 == 0:       # the clean specs: a plan with its requests counted
        (code, out, _), _ = seen[True]
        assert code == 0 and json.loads(out)["cells"] and all(c["requests"] > 0 for c in json.loads(out)["cells"])
