"""Issue 10 case 8, by another path: one image named by many inputs multiplies the bytes written
and sent without any alias. The run's request bodies have a budget set outside the spec."""

from __future__ import annotations

import os

from tests.helpers import harness, write_spec

ROWS = 200


def _spec(tmp_path):
    (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100_000))
    inputs = "\n".join(f"  - {{id: p{i}, image: big.png}}" for i in range(ROWS))
    return write_spec(tmp_path, "version: 1\nname: repeat\nmodels: [qwen3-vl-embedding]\n"
                                "dimensions: [256, 1024]\ninputs:\n" + inputs + "\n")


def test_an_image_named_by_many_inputs_is_stopped_by_the_payload_budget(tmp_path):
    spec = _spec(tmp_path)
    # 200 inputs × 2 cells × ~133 kB of base64: about 53 MB of request bodies
    r = harness("run", spec.name, "--output", "out", "--max-payload-bytes", "20000000", cwd=tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "spec.yaml:5:1: the requests would carry about" in r.stderr
    assert "over the budget of 20 MB" in r.stderr and "--max-payload-bytes" in r.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())

    # the same bound from the environment, for validate too (a spec cannot raise it)
    r = harness("validate", spec.name, cwd=tmp_path, env={"HARNESS_MAX_PAYLOAD_BYTES": "20000000"})
    assert r.returncode == 3 and "over the budget of 20 MB" in r.stderr

    # raised by the person running it, the run is written and verifies under the same bound
    r = harness("run", spec.name, "--output", "out", "--max-payload-bytes", "80000000", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    r = harness("verify", "out/repeat", "--max-payload-bytes", "80000000", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith("verified"), r.stdout + r.stderr


def test_a_malformed_budget_in_the_environment_is_a_usage_error(tmp_path):
    spec = _spec(tmp_path)
    r = harness("validate", spec.name, cwd=tmp_path, env={"HARNESS_MAX_PAYLOAD_BYTES": "lots"})
    assert r.returncode == 2 and "HARNESS_MAX_PAYLOAD_BYTES='lots' is not a positive number" in r.stderr


def test_a_small_budget_is_said_in_units_that_show_it():
    """A budget under a megabyte was said "about 0 MB … over the budget of 0 MB"."""
    from harness.words import size

    assert [size(n) for n in (1, 812, 2000, 48_123, 3_400_000, 12_000_000, 4 << 30)] == [
        "1 byte", "812 bytes", "2.0 kB", "48 kB", "3.4 MB", "12 MB", "4.3 GB"]
