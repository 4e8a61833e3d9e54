"""`harness validate` reports every mistake of a spec at once: a mistake in one part (the schema,
the region, one dimension) never hides the mistakes in another, and each is reported once, at
its file:line:col, in file order."""

from __future__ import annotations

import re

from tests.helpers import harness, write_spec


def validate(tmp_path, text, *extra):
    spec = write_spec(tmp_path, text)
    r = harness("validate", spec.name, *extra, cwd=tmp_path)
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    return r


def located(r) -> list[str]:
    return [line for line in r.stderr.splitlines() if line.startswith("spec.yaml:")]


def positions(lines) -> list[tuple[int, int]]:
    return [tuple(map(int, re.match(r"spec\.yaml:(\d+):(\d+):", line).groups())) for line in lines]


def assert_once_in_file_order(lines):
    assert len(lines) == len(set(lines)), "a problem was reported twice"
    assert positions(lines) == sorted(positions(lines))


def test_an_unknown_region_hides_no_model_dimension_or_id_mistake(tmp_path):
    r = validate(tmp_path, """\
        version: 1
        name: t
        region: mars
        models:
          - qwen3-vl-embeding
          - name: qwen2.5-vl-embedding
            dimensions: [2560]
          - qwen3-vl-embedding
          - qwen3-vl-embedding
        inputs:
          - id: a
            text: hello
          - id: a
            text: again
        """)
    assert r.returncode == 3
    got = located(r)
    assert_once_in_file_order(got)
    assert got[0].startswith('spec.yaml:3:9: region is "mars", which is not allowed')
    assert got[1].startswith("spec.yaml:5:5: unknown model 'qwen3-vl-embeding'")
    assert got[2].startswith("spec.yaml:7:18: qwen2.5-vl-embedding does not support output dimension 2560")
    assert got[3].startswith("spec.yaml:9:5: model 'qwen3-vl-embedding' is listed twice")
    assert got[4].startswith("spec.yaml:13:5: duplicate input id 'a'")
    assert len(got) == 5, got     # no follow-on "not offered in mars": the region is reported once


def test_a_schema_error_hides_neither_input_problems_nor_unknown_check_ids(tmp_path):
    r = validate(tmp_path, """\
        version: 1
        name: t
        regoin: cn-beijing
        inputs:
          - id: a
            text: hello
          - id: b
            image: missing.png
          - id: c
            text: x
            image: y.png
        checks:
          - nearest: {query: a, expect: zz}
          - similarity: {a: a, b: c, min: 5}
          - similarity: {a: a, b: b, max: 0.9}
        """)
    assert r.returncode == 3
    got = located(r)
    assert_once_in_file_order(got)
    assert got[0].startswith("spec.yaml:3:1: unknown key 'regoin'")
    assert got[1].startswith("spec.yaml:8:12: image file 'missing.png' does not exist")
    assert got[2].startswith("spec.yaml:9:5:") and "exactly one of" in got[2]
    assert got[3].startswith("spec.yaml:13:33: check nearest: unknown input id 'zz'")
    assert got[4].startswith("spec.yaml:14:35:") and "greater than the maximum of 1" in got[4]
    # `b` is written in the spec: its missing image is the mistake, not the check naming it;
    # `c` is refused by the schema, and the check naming it is not blamed for that either
    assert len(got) == 5, got


def test_a_refused_input_entry_hides_no_problem_of_the_others(tmp_path):
    r = validate(tmp_path, """\
        version: 1
        name: t
        inputs:
          - id: 5
            text: hello
          - id: b
            image: missing.png
          - id: b
            text: again
        """)
    assert r.returncode == 3
    got = located(r)
    assert_once_in_file_order(got)
    assert got[0].startswith("spec.yaml:4:9: inputs[0].id must be a string, not integer 5")
    assert got[1].startswith("spec.yaml:7:12: image file 'missing.png' does not exist")
    assert got[2].startswith("spec.yaml:8:5: duplicate input id 'b'")
    assert len(got) == 3, got


def test_every_dimension_mistake_of_a_model_is_reported_once(tmp_path):
    r = validate(tmp_path, """\
        version: 1
        name: t
        models:
          - name: qwen2.5-vl-embedding
            dimensions: [0, -1, 70000, "x", 1.5, 3, 1024, 5]
        inputs:
          - text: hello
        """)
    assert r.returncode == 3
    got = located(r)
    assert_once_in_file_order(got)
    assert [p[0] for p in positions(got)] == [5] * 7
    assert len({p[1] for p in positions(got)}) == 7, "one message per bad dimension, none twice"
    assert "dimensions[0]: 0 is less than the minimum of 1" in got[0]
    assert "dimensions[1]: -1 is less than the minimum of 1" in got[1]
    assert "dimensions[2]: 70000 is greater than the maximum of 65536" in got[2]
    assert 'dimensions[3] must be an integer, not string "x"' in got[3]
    assert "dimensions[4] must be an integer, not number 1.5" in got[4]
    assert "does not support output dimension 3" in got[5] and "does not support output dimension 5" in got[6]


def test_a_refused_model_entry_part_leaves_the_rest_of_the_entry_checked(tmp_path):
    r = validate(tmp_path, """\
        version: 1
        name: t
        models:
          - name: qwen2.5-vl-embedding
            dimensions: [0]
            parameters: {res_level: 1, colour: red}
            modalities: [text, imagee]
        inputs:
          - text: hello
        """)
    assert r.returncode == 3
    got = located(r)
    assert_once_in_file_order(got)
    assert "dimensions[0]: 0 is less than the minimum of 1" in got[0]
    assert "qwen2.5-vl-embedding does not accept parameter 'res_level'" in got[1]
    assert "unknown key 'colour'" in got[2]
    assert 'modalities[1] is "imagee", which is not allowed' in got[3] and "did you mean 'image'?" in got[3]
    assert len(got) == 4, got


def test_a_model_whose_modalities_match_no_input_is_a_spec_mistake(tmp_path):
    text = """\
        version: 1
        name: t
        models:
          - qwen3-vl-embedding
          - name: local/e5-small
            modalities: [image]
        inputs:
          - id: a
            text: hello
        """
    r = validate(tmp_path, text)
    assert r.returncode == 3, r.stderr
    assert located(r) == ["spec.yaml:6:5: local/e5-small would get no inputs: its modalities [image] match none "
                          "of this spec's inputs (text) (widen `modalities:`, add inputs of those modalities, "
                          "or remove the model)"]
    r = harness("run", "spec.yaml", "--execute", cwd=tmp_path)
    assert r.returncode == 3 and "would get no inputs" in r.stderr
    assert not (tmp_path / "output").exists()


def test_a_modalities_filter_that_matches_an_input_which_failed_is_not_blamed(tmp_path):
    r = validate(tmp_path, """\
        version: 1
        name: t
        models:
          - name: qwen3-vl-embedding
            modalities: [image]
        inputs:
          - id: a
            text: hello
          - id: b
            image: gone.png
        """)
    assert r.returncode == 3
    got = located(r)
    assert len(got) == 1 and "gone.png' does not exist" in got[0], got


def test_validate_help_says_it_reports_every_mistake_at_once(tmp_path):
    out = " ".join(harness("validate", "--help", cwd=tmp_path).stdout.split())
    assert "every mistake of each spec at once" in out and "exit 3" in out
