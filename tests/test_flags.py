"""Numeric flags have ranges: a value out of range is a usage error (exit 2) naming the flag and
the range, never a crash; the spec's `execution:` settings have the same ranges (exit 3)."""

from __future__ import annotations

import pytest

from tests.helpers import harness, write_spec

SPEC = """\
    version: 1
    name: t
    models: [local/e5-small]
    inputs:
      - {id: a, text: hello}
    """

OUT_OF_RANGE = [
    ("run", "--concurrency", "0", "1 to 256"),
    ("run", "--concurrency", "257", "1 to 256"),
    ("run", "--max-attempts", "0", "1 to 20"),
    ("run", "--timeout", "-1", "more than 0, at most 3600"),
    ("run", "--timeout", "nan", "more than 0, at most 3600"),
    ("run", "--rpm", "-5", "1 to 1000000"),
    ("run", "--tpm", "0", "1 to 1000000000"),
    # a 400-digit integer: math.isfinite() raised OverflowError (a traceback, exit 1); the limiter would too
    ("run", "--rpm", "9" * 400, "1 to 1000000"),
    ("run", "--concurrency", "9" * 400, "1 to 256"),
    ("prepare", "--dimension", "0", "1 to 65536"),
    ("prepare", "--fps", "1.5", "0 to 1"),
    ("prepare", "--max-video-frames", "0", "1 to 64"),
    ("export", "--top-k", "0", "1 to 100"),
    ("diff", "--tolerance", "-0.1", "0 to 2"),
    ("diff", "--metric-tolerance", "1.5", "0 to 1"),
]
POSITIONAL = {"run": ["spec.yaml", "--execute"], "prepare": [], "export": ["output/t", "--to", "v.db"],
              "diff": ["output/t", "output/t"]}


@pytest.mark.parametrize("command, flag, value, allowed", OUT_OF_RANGE,
                         ids=[f"{c} {f} {v}" for c, f, v, _ in OUT_OF_RANGE])
def test_an_out_of_range_flag_is_a_usage_error(tmp_path, command, flag, value, allowed):
    write_spec(tmp_path, SPEC)
    r = harness(command, *POSITIONAL[command], f"{flag}={value}", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert f"argument {flag}: {value} is out of range ({allowed})" in r.stderr
    assert "internal error" not in r.stderr and not (tmp_path / "output").exists()


def test_a_non_number_names_the_flag_and_its_range(tmp_path):
    write_spec(tmp_path, SPEC)
    r = harness("run", "spec.yaml", "--concurrency", "many", cwd=tmp_path)
    assert r.returncode == 2 and "argument --concurrency: 'many' is not an integer (1 to 256)" in r.stderr


def test_the_edges_of_each_range_are_accepted(tmp_path):
    write_spec(tmp_path, SPEC)
    r = harness("run", "spec.yaml", "--concurrency", "256", "--max-attempts", "20", "--timeout", "0.5",
                "--rpm", "1", "--tpm", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_the_spec_execution_settings_have_the_same_ranges(tmp_path):
    write_spec(tmp_path, """\
        version: 1
        name: t
        inputs:
          - {id: a, text: hello}
        execution:
          concurrency: 0
          max_attempts: 0
          timeout: -1
          rpm: -5
        """)
    r = harness("validate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3
    got = [line for line in r.stderr.splitlines() if line.startswith("spec.yaml:")]
    assert got[0].startswith("spec.yaml:6:16: execution.concurrency: 0 is less than the minimum of 1")
    assert got[1].startswith("spec.yaml:7:17: execution.max_attempts: 0 is less than the minimum of 1")
    assert got[2].startswith("spec.yaml:8:12: execution.timeout: -1 is less than or equal to the minimum of 0")
    assert got[3].startswith("spec.yaml:9:8: execution.rpm: -5 is less than the minimum of 1")


def test_a_yaml_nan_or_infinity_is_refused_where_it_is_written(tmp_path):
    write_spec(tmp_path, """\
        version: 1
        name: t
        parameters: {fps: .nan}
        execution: {timeout: .inf}
        inputs:
          - {id: a, video: https://example.com/a.mp4}
        """)
    r = harness("run", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    got = [line for line in r.stderr.splitlines() if line.startswith("spec.yaml:")]
    assert got[0].startswith("spec.yaml:3:19: parameters.fps is nan, which is not a finite number")
    assert got[1].startswith("spec.yaml:4:22: execution.timeout is inf, which is not a finite number")
    assert len(got) == 2, got
    assert not (tmp_path / "output").exists()


def test_a_huge_rate_in_the_spec_is_out_of_range_not_a_crash(tmp_path):
    # execution: {rpm: <400 digits>} validated, then `run --execute` died in the limiter with exit 70
    write_spec(tmp_path, """\
        version: 1
        name: t
        models: [qwen3-vl-embedding]
        inputs:
          - {id: a, text: hello}
        execution:
          rpm: %s
        """ % ("9" * 400))
    r = harness("run", "spec.yaml", "--execute", cwd=tmp_path, env={"DASHSCOPE_API_KEY": "sk-test-1234567"})
    assert r.returncode == 3, r.stderr
    assert "spec.yaml:7:8: execution.rpm:" in r.stderr and "maximum of 1000000" in r.stderr


def test_a_mistyped_command_gets_the_nearest_one(tmp_path):
    """`harness valdate` names `validate` (issue 26, item 12), exit 2 as any bad command line."""
    r = harness("valdate", "spec.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "unknown command 'valdate': did you mean 'validate'?" in r.stderr, r.stderr
    r = harness("frobnicate", cwd=tmp_path)
    assert r.returncode == 2 and "unknown command 'frobnicate'" in r.stderr and "validate" in r.stderr
