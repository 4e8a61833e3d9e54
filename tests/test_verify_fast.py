"""Issue 14 ("Fast at every size"): `verify` re-derives in memory (nothing written and read back),
`verify --hashes-only` checks the hashes alone and says what that does not prove, and finishing a
cell streams its vectors to disk (no second copy of the matrix)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from harness.errors import ExitCode
from tests.helpers import Result, harness
from tests.test_verify import CELL, flip, make_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run(tmp_path) -> Path:
    return make_run(tmp_path)        # a real offline run plus vectors through the folder writer


def verify(folder: Path, *extra: str) -> Result:
    # from the folder holding the project and the run, as a user verifies (the root of recorded paths)
    return harness("verify", str(folder), *extra, cwd=folder.parents[1])


# --- --hashes-only ------------------------------------------------------------------------------

def test_hashes_only_verifies_and_says_what_it_does_not_prove(run):
    r = verify(run, "--hashes-only")
    assert r.returncode == ExitCode.OK, r.stdout + r.stderr
    assert r.stdout.startswith(f"verified, hashes only: {run} (")
    assert "files match their sha256, the manifest its digest" in r.stdout
    assert "re-derived byte for byte" not in r.stdout          # it must not claim re-derivation
    assert "not checked (--hashes-only" in r.stdout
    assert "payloads, index files and inputs.jsonl follow from the spec" in r.stdout
    assert "validate.txt follows from the vectors" in r.stdout
    data = json.loads(verify(run, "--hashes-only", "--json").stdout)
    assert data["verified"] is True and data["hashes_only"] is True and data["derived"] == 0
    assert any("not re-derived" in line for line in data["not_checked"])
    help_text = harness("verify", "--help", cwd=run.parent).stdout
    assert "--hashes-only" in help_text and "Does NOT prove" in " ".join(help_text.split())


def test_hashes_only_catches_a_tampered_vector_file(run):
    flip(run / "vectors" / f"{CELL}.npy")
    r = verify(run, "--hashes-only")
    assert r.returncode == ExitCode.VERIFY_MISMATCH
    assert r.stdout.startswith(f"MISMATCH: {run}: 1 finding")
    assert f"changed     vectors/{CELL}.npy: sha256" in r.stdout
    assert "not checked (--hashes-only" in r.stdout


def test_hashes_only_catches_a_tampered_payload_without_claiming_rederivation(run):
    flip(run / "payloads" / CELL / "requests.jsonl", offset=12)
    r = verify(run, "--hashes-only")
    assert r.returncode == ExitCode.VERIFY_MISMATCH
    assert f"changed     payloads/{CELL}/requests.jsonl: sha256" in r.stdout
    assert "re-derived" not in r.stdout.split("not checked")[0]   # the comparison is the hash's alone
    full = verify(run)                                            # the full verify names both layers
    assert f"payload     payloads/{CELL}/requests.jsonl: re-derived bytes differ" in full.stdout


def test_hashes_only_catches_an_edited_manifest_digest(run):
    path = run / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(path.read_text().replace(manifest["digest"], "0" * 64))
    r = verify(run, "--hashes-only")
    assert r.returncode == ExitCode.VERIFY_MISMATCH and "manifest    manifest.json: digest mismatch" in r.stdout


@pytest.mark.parametrize("flag", [["--reexecute"], ["--strict"], ["--spec-dir", "."]])
def test_hashes_only_refuses_flags_that_need_rederivation(run, flag):
    r = verify(run, "--hashes-only", *flag)
    assert r.returncode == ExitCode.USAGE
    assert f"{flag[0]} does nothing with --hashes-only" in r.stderr and "Traceback" not in r.stderr


# --- verify re-derives in memory --------------------------------------------------------------

def _written_by_verify(folder: Path) -> tuple[int, bool]:
    """Bytes the verifying process wrote (Linux /proc/self/io `wchar`), and whether it verified.
    A process of its own: the counter is the whole process's, and pytest's (or xdist's) own writes
    would count in this one."""
    script = textwrap.dedent(f"""
        # imports write no run files
        import harness.audit.verify.checker, harness.plan.write, harness.plan.build, harness.report.html
        def wchar():
            return int(next(l for l in open("/proc/self/io") if l.startswith("wchar")).split()[1])
        before = wchar()
        report = harness.audit.verify.checker.verify_folder({str(folder)!r})
        print(wchar() - before, report.ok)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    written, ok = out.split()
    return int(written), ok == "True"


@pytest.mark.slow    # a fresh process measures its own I/O and memory
@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_verify_writes_nothing_to_rederive_the_payloads(tmp_path):
    spec = tmp_path / "spec.yaml"
    rows = "".join(f"  - id: t-{i}\n    text: caption number {i} of a cat on a chair, long enough to count\n"
                   for i in range(2000))
    spec.write_text("version: 1\nname: many\nmodels: [qwen3-vl-embedding, tongyi-embedding-vision-plus-2026-03-06]\n"
                    "dimensions: [1024, 512, 256]\n"
                    f"inputs:\n{rows}")
    r = harness("run", "spec.yaml", "--output", "out", "--quiet", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "out" / "many"
    payload_bytes = sum(p.stat().st_size for p in (folder / "payloads").rglob("*") if p.is_file())
    written, ok = _written_by_verify(folder)
    assert ok
    # What it may write is the plan's spool of the resolved inputs (as `harness run` does): less than
    # half of the six cells' payloads here; re-derived payloads in a scratch folder would be all of them.
    assert written < payload_bytes, f"verify wrote {written} bytes re-deriving {payload_bytes} bytes of payloads"


# --- finishing a cell streams -----------------------------------------------------------------

FINISH = """
import resource, sys
from pathlib import Path
import numpy as np
from types import SimpleNamespace as Stand
from harness.execute.results import CellOutcome, write_cell_evidence

n, dim, folder = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
cid = f"stand-in-{dim}"
rng = np.random.default_rng(7)
# what write_cell_evidence reads of the engine's cell: its spec, outcome, requests, matrix and mask
cell = Stand(spec={"id": cid}, outcome=CellOutcome(cid, "stand-in", "stand-in", True, True, expected_vectors=n),
             requests=[], info=None, tokens={})
cell.matrix = np.empty((n, dim), dtype=np.float32)
for s in range(0, n, 1024):          # filled a block at a time, as answers arrive
    cell.matrix[s:s + 1024] = rng.standard_normal((min(1024, n - s), dim), dtype=np.float32)
cell.received = np.ones(n, dtype=bool)
cell.received[int(sys.argv[4]) if len(sys.argv) > 4 else n:] = False       # a failed tail: no rows
per = 10
for k in range(0, n, per):
    ids = [f"in-{i}" for i in range(k, min(n, k + per))]
    cell.requests.append(Stand(inputs=ids, record={"file": f"{k // per + 1:05d}.json", "ok": True}))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
write_cell_evidence(folder, cell, None)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((peak - before) * 1024, cell.matrix.nbytes, cell.outcome.written.get(f"vectors/{cid}.npy", ""))
"""


def finish_cell(folder: Path, n: int, dim: int, received: int | None = None) -> tuple[int, int, str]:
    """Finish a cell of n × dim float32 vectors through the real writer in a fresh process (the peak
    memory is the whole process's, so it must hold nothing else); returns the growth of its peak
    memory while finishing, the matrix's bytes and the .npy's sha256. What it costs in time is a
    benchmark: bench/bench_verify.py."""
    args = [sys.executable, "-c", FINISH, str(n), str(dim), str(folder)] + ([str(received)] if received else [])
    out = subprocess.run(args, check=False, capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    grew, size, sha = out.stdout.split()
    return int(grew), int(size), sha


@pytest.mark.slow    # a fresh process measures its own I/O and memory
@pytest.mark.parametrize("received", [None, 6000])
def test_finishing_a_cell_holds_no_second_copy_of_its_vectors(tmp_path, received):
    grew, size, _ = finish_cell(tmp_path, 8000, 1024, received)   # 32 MB of vectors
    assert grew <= size // 2, f"finishing grew the peak memory by {grew / size:.2f}× the vector matrix"


def test_streamed_vectors_file_is_what_np_save_writes_and_its_hash_is_known(tmp_path):
    _, _, sha = finish_cell(tmp_path, 1000, 64, received=900)
    npy = tmp_path / "vectors" / "stand-in-64.npy"
    data = npy.read_bytes()
    assert sha == hashlib.sha256(data).hexdigest()
    matrix = np.load(npy)
    assert matrix.shape == (900, 64) and matrix.dtype == np.float32
    buf = io.BytesIO()
    np.save(buf, matrix, allow_pickle=False)
    assert data == buf.getvalue()           # byte for byte the file np.save writes
    assert json.loads((tmp_path / "vectors" / "stand-in-64.ids.json").read_text()) == [f"in-{i}" for i in range(900)]
