"""Bad input-set rows, failing templates, invalid Unicode and alias bombs (issue 10 cases 7, 8, 9):
each is an error at exit 3 naming the file and row (or the spec's line:col), and nothing is written."""

from __future__ import annotations

import pytest

from tests.helpers import harness, payload_json, write_spec

CSV_SPEC = """
    version: 1
    name: t
    models: [qwen3-vl-embedding]
    inputs:
      - from: rows.csv
        text: "{{ row.caption }}"
    """
JSONL_SPEC = CSV_SPEC.replace("rows.csv", "rows.jsonl")


def refused(tmp_path, *messages: str):
    r = harness("run", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    for m in messages:
        assert m in r.stderr, r.stderr
    assert not (tmp_path / "output").exists()
    return r


# -- case 7: ragged CSV rows, JSON null / lists / objects --------------------------------------

@pytest.mark.parametrize("row, fields", [("2", "1 field"), ("3,x,y", "3 fields")])
def test_ragged_csv_row_is_an_error_naming_file_and_row(tmp_path, row, fields):
    (tmp_path / "rows.csv").write_text(f"id,caption\n1,a cat\n{row}\n")
    write_spec(tmp_path, CSV_SPEC)
    refused(tmp_path, f"spec.yaml:5:11: rows.csv row 2 (line 3) has {fields}, the header has 2")


@pytest.mark.parametrize("value, what", [("null", "null"), ("[1, 2]", "a list [1, 2]"),
                                          ('{"a": 1}', 'an object {"a": 1}')])
def test_jsonl_value_without_text_form_is_an_error_naming_the_line(tmp_path, value, what):
    (tmp_path / "rows.jsonl").write_text(f'{{"id": "a", "caption": "ok"}}\n{{"id": "b", "caption": {value}}}\n')
    write_spec(tmp_path, JSONL_SPEC)
    r = refused(tmp_path, f"spec.yaml:6:11: rows.jsonl line 2: the template prints {what}, not text")
    assert "None" not in r.stderr


def test_jsonl_list_joined_in_the_template_is_fine(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"id": "a", "caption": ["red", "chair"]}\n')
    write_spec(tmp_path, JSONL_SPEC.replace("row.caption", "row.caption | join(' ')"))
    assert harness("run", "spec.yaml", cwd=tmp_path).returncode == 0
    body = payload_json(tmp_path / "output/t", "qwen3-vl-embedding-2560", 1)
    assert body["input"]["contents"] == [{"text": "red chair"}]


# -- case 8: aliases bounded in bytes, not only in values ---------------------------------------

def test_alias_expanding_to_many_megabytes_is_refused_at_the_alias(tmp_path):
    big = "x" * (1 << 20)
    lines = ["version: 1", "name: t", "models: [qwen3-vl-embedding]", "inputs:", f"  - text: &big {big}"]
    lines += ["  - text: *big"] * 60          # 60 MB of text from a 1 MB file
    (tmp_path / "spec.yaml").write_text("\n".join(lines) + "\n")
    # the 41st alias crosses 40 MB: line 6 holds the first
    refused(tmp_path, "spec.yaml:46:11: the aliases of this document expand to more than 40 MB of text")


def test_a_template_multiplying_a_field_is_refused_like_an_alias_bomb(tmp_path):
    # the alias bomb by another path: 200 short rows × a 1 MB text each wrote 200 MB of payloads
    (tmp_path / "rows.csv").write_text("id,caption\n" + "".join(f"{i},a cat\n" for i in range(200)))
    write_spec(tmp_path, CSV_SPEC.replace("{{ row.caption }}", "{{ row.caption * 200000 }}"))
    refused(tmp_path, "spec.yaml:6:11: rows.csv row 1: the `text` template prints 1,000,000 characters for a row "
            "of 6", "not multiply them")


def test_a_template_repeating_fields_with_its_own_text_is_fine(tmp_path):
    (tmp_path / "rows.csv").write_text("id,caption\n1,a cat\n")
    write_spec(tmp_path, CSV_SPEC.replace("{{ row.caption }}", "Represent this caption for retrieval: "
                                          "{{ row.caption }} ({{ row.caption | upper }}, {{ row.id }})"))
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_ordinary_aliases_still_work(tmp_path):
    lines = ["version: 1", "name: t", "models: [qwen3-vl-embedding]", "inputs:",
             f"  - {{id: i0, text: &t {'y' * 1000}}}"]
    lines += [f"  - {{id: i{n}, text: *t}}" for n in range(1, 1000)]
    (tmp_path / "spec.yaml").write_text("\n".join(lines) + "\n")
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_alias_inside_its_own_anchor_is_an_error_not_a_crash(tmp_path):
    write_spec(tmp_path, """
        version: 1
        name: t
        models: [qwen3-vl-embedding]
        x-loop: &a [*a]
        inputs: [{text: a}]
        """)
    refused(tmp_path, "spec.yaml:4:13: this alias refers to a value that contains it")


# -- case 9: templates that raise, long CSV fields, lone surrogates ------------------------------

def test_template_dividing_by_zero_is_an_error_naming_the_row(tmp_path):
    (tmp_path / "rows.csv").write_text("id,caption\n1,a cat\n")
    write_spec(tmp_path, CSV_SPEC.replace("{{ row.caption }}", "{{ 1/0 }}"))
    refused(tmp_path, "spec.yaml:6:11: rows.csv row 1: the `text` template fails: ZeroDivisionError: division by zero")


def test_template_adding_a_number_to_a_csv_field_is_an_error_at_the_id(tmp_path):
    (tmp_path / "rows.csv").write_text("id,caption\n1,a cat\n2,a dog\n")
    write_spec(tmp_path, CSV_SPEC.replace('text:', 'id: "n-{{ row.id + 1 }}"\n        text:'))
    refused(tmp_path, "spec.yaml:6:9: rows.csv row 1: the `id` template fails: TypeError:",
            "rows.csv row 2: the `id` template fails", "convert with | int")


def test_csv_field_longer_than_pythons_default_limit_is_read(tmp_path):
    (tmp_path / "rows.csv").write_text(f"id,caption\n1,{'word ' * 40_000}\n")   # 200,000 characters
    write_spec(tmp_path, CSV_SPEC)
    r = harness("run", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    body = payload_json(tmp_path / "output/t", "qwen3-vl-embedding-2560", 1)
    assert len(body["input"]["contents"][0]["text"]) == 200_000


def test_csv_field_over_the_limit_is_an_error_naming_the_row(tmp_path):
    (tmp_path / "rows.csv").write_text(f"id,caption\n1,ok\n2,{'x' * (16 * 2**20 + 1)}\n")
    write_spec(tmp_path, CSV_SPEC)
    refused(tmp_path, "spec.yaml:5:11: rows.csv row 2 (line 3): field larger than field limit (16777216)",
            "fields are limited to 16,777,216 characters")


def test_lone_surrogate_in_the_spec_is_an_error_at_its_line(tmp_path):
    write_spec(tmp_path, r"""
        version: 1
        name: t
        models: [qwen3-vl-embedding]
        inputs:
          - text: "ok"
          - text: "bad \ud800 text"
        """)
    refused(tmp_path, r"spec.yaml:6:11: this text holds a lone surrogate ('\ud800'), which is not valid Unicode")


def test_escaped_surrogate_pair_in_the_spec_is_one_character(tmp_path):
    write_spec(tmp_path, r"""
        version: 1
        name: t
        models: [qwen3-vl-embedding]
        inputs:
          - text: "smile \ud83d\ude00"
        """)
    assert harness("run", "spec.yaml", cwd=tmp_path).returncode == 0
    body = payload_json(tmp_path / "output/t", "qwen3-vl-embedding-2560", 1)
    assert body["input"]["contents"] == [{"text": "smile \U0001F600"}]


def test_lone_surrogate_in_a_jsonl_file_is_an_error_naming_the_line(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"id": "a", "caption": "ok"}\n{"id": "b", "caption": "x\\udc00"}\n')
    write_spec(tmp_path, JSONL_SPEC)
    refused(tmp_path, r"spec.yaml:6:11: rows.jsonl line 2: the text holds a lone surrogate ('\udc00' at character 2)")


def test_nul_byte_in_an_image_path_from_jsonl_is_an_error_naming_the_line(tmp_path):
    (tmp_path / "rows.jsonl").write_text('{"id": "a", "photo": "x\\u0000.png"}\n')
    write_spec(tmp_path, JSONL_SPEC.replace("text: \"{{ row.caption }}\"", "image: \"{{ row.photo }}\""))
    refused(tmp_path, r"spec.yaml:6:12: rows.jsonl line 1: image 'x\x00.png' is not a usable path")


def test_a_quote_never_closed_is_an_error_not_a_field_swallowing_the_rest(tmp_path):
    # Python's csv (non-strict) read rows 2 and 3 into row 1's caption, silently: 1 input instead of 3
    (tmp_path / "rows.csv").write_text('id,caption\n1,a cat\n2,"a dog\n3,a bird\n')
    write_spec(tmp_path, CSV_SPEC)
    refused(tmp_path, "spec.yaml:5:11: rows.csv row 2 (line 3): a quoted field that is never closed")


def test_a_header_naming_a_column_twice_is_an_error(tmp_path):
    # DictReader kept the last `caption` column and dropped the first, silently
    (tmp_path / "rows.csv").write_text("id,caption,caption\n1,a cat,a dog\n")
    write_spec(tmp_path, CSV_SPEC)
    refused(tmp_path, "spec.yaml:5:11: rows.csv header names the column 'caption' more than once")


@pytest.mark.parametrize("value, what", [("9" * 5000, "a number too long to read"),
                                         ("[" * 200_000 + "]" * 200_000, "nesting too deep to read"),
                                         ("NaN", "NaN is not a JSON number")])
def test_a_jsonl_line_python_cannot_read_is_an_error_naming_the_line(tmp_path, value, what):
    # a 5,000-digit number (ValueError) and deep nesting (RecursionError) were exit 70; NaN became "nan"
    (tmp_path / "rows.jsonl").write_text(('{"id": "a", "caption": "a cat"}\n'
                                          '{"id": "b", "caption": "x", "n": %s}\n') % value)
    write_spec(tmp_path, JSONL_SPEC)
    refused(tmp_path, f"spec.yaml:5:11: rows.jsonl line 2 is not usable JSON: {what}")


@pytest.mark.parametrize("text, where, what", [
    ("dimensions: [%s]\n" % ("9" * 5000), "spec.yaml:4:14:", "this number has 5,000 characters, too long to read"),
    ("x: %s\n" % ("[" * 100_000 + "]" * 100_000), "spec.yaml:1:1:", "the document is nested too deeply")])
def test_a_spec_python_cannot_read_is_an_error_not_a_crash(tmp_path, text, where, what):
    # a 5,000-digit integer (ValueError) and deep nesting while composing (RecursionError) were exit 70
    (tmp_path / "spec.yaml").write_text("version: 1\nname: t\nmodels: [qwen3-vl-embedding]\n" + text
                                        + "inputs:\n  - {id: a, text: hi}\n")
    refused(tmp_path, f"{where} {what}")


@pytest.mark.parametrize("name, kind", [("a\\b.csv", "input file"), ("pics\\x.png", "image")])
def test_an_input_path_with_a_backslash_is_refused_saying_to_write_slashes(tmp_path, name, kind):
    """On Linux a backslash is a character of a name, on Windows a separator; a run folder records
    input paths with / and `harness verify` refuses any other, so a run that read one could be checked
    on its hashes only. The run refuses it instead, at the spec's line."""
    (tmp_path / name).write_bytes(b"id,caption\n1,a cat\n")
    entry = (f"  - from: '{name}'\n    text: \"{{{{ row.caption }}}}\"" if kind == "input file" else
             f"  - image: '{name}'")      # single quotes: YAML reads the backslash as it is
    write_spec(tmp_path, f"version: 1\nname: t\nmodels: [qwen3-vl-embedding]\ninputs:\n{entry}\n")
    r = refused(tmp_path, f"{kind} {name!r} holds a backslash", "write paths with /")
    assert "spec.yaml:5:" in r.stderr


def test_rows_refused_for_their_values_are_capped_like_template_errors(tmp_path):
    """600 blank texts were 600 messages; a set's row errors of every kind stop at MAX_TEMPLATE_ERRORS."""
    from harness.inputs.rows import MAX_TEMPLATE_ERRORS

    (tmp_path / "rows.csv").write_text("id,caption\n" + "".join(f"{i}, \n" for i in range(600)))
    write_spec(tmp_path, CSV_SPEC)
    r = refused(tmp_path, f"stopped after {MAX_TEMPLATE_ERRORS} errors in rows.csv")
    assert r.stderr.count("the text is empty") == MAX_TEMPLATE_ERRORS
