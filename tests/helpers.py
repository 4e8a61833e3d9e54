"""Small helpers shared by the tests: run the real CLI (in-process by default), write specs and images."""

from __future__ import annotations

import contextlib
import io
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"
TEST_KEY = "sk-test-0123456789abcdef"     # what the shared fake DashScope server accepts

# What a developer's shell or the CI runner may set that would change what the CLI does: keys,
# endpoints, the harness's own switches and CI mode. Every CLI call starts without them.
ISOLATED = ("DASHSCOPE_", "ALIBABA_CLOUD", "ALICLOUD", "HARNESS_", "OUTPUT_DIR", "SSH_AUTH_SOCK", "CI",
            "GITHUB_", "NO_COLOR", "COLUMNS")


@dataclass
class Result:
    """What a CLI call gave back, named as `subprocess.CompletedProcess` names it."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def cli_env(home: Path, cache: Path | None = None, **extra: str) -> dict[str, str]:
    """The environment of one CLI call: this one's, less `ISOLATED`, with its own HOME (no key from
    ~/.dashscope) and cache; `extra` last (a None value removes)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ISOLATED)}
    env.update(HOME=str(home), HARNESS_CACHE_DIR=str(cache or home / ".cache"), HF_HUB_OFFLINE="1")
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


class _Output(io.TextIOWrapper):
    """A captured stdout/stderr: text, with `.buffer` for the commands that write bytes; not a tty."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="utf-8", errors="replace", newline=None, write_through=True)

    def text(self) -> str:
        self.flush()
        return self.buffer.getvalue().decode("utf-8", errors="replace")


def run_cli(*args: str, cwd: Path, env: dict[str, str], input: str | None = None) -> Result:
    """`harness ARGS` in this process: `cli.main` with `env` as the whole environment, `cwd` as the
    working folder and stdin/stdout/stderr captured; everything is put back afterwards."""
    from harness import cli

    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_term = signal.getsignal(signal.SIGTERM)
    out, err = _Output(), _Output()
    sys.stdin = io.TextIOWrapper(io.BytesIO((input or "").encode()), encoding="utf-8")
    sys.stdout, sys.stderr = out, err
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    try:
        try:
            code = cli.main([str(a) for a in args])
        except SystemExit as e:          # argparse: --help, --version, a bad command line
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr)
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        signal.signal(signal.SIGTERM, saved_term)
    return Result([str(a) for a in args], int(code), out.text(), err.text())


def run_process(*args: str, cwd: Path, env: dict[str, str], timeout: float = 300,
                input: str | None = None) -> subprocess.CompletedProcess:
    """`python -m harness ARGS` as its own process: only for tests about the process itself
    (signals, import time, umask, kill -9)."""
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd, env=env, input=input,
                          capture_output=True, text=True, timeout=timeout)


def harness(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> Result:
    """`harness ARGS` as a user would run it in `cwd`, with a clean key-less environment (HOME=cwd)."""
    return run_cli(*args, cwd=cwd, env=cli_env(cwd, **(env or {})))


def write_spec(folder: Path, text: str, name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def copy_images(folder: Path) -> Path:
    """The small real images shipped with the examples, copied next to a test spec."""
    dest = folder / "images"
    shutil.copytree(SPECS / "images", dest)
    return dest


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def payload(folder: Path, cell: str, n: int = 1) -> bytes:
    """Request `n`'s body (1-based) as the folder holds it, whichever its payload layout (through
    the folder's reader, as `harness payload` prints it)."""
    from harness.folder import open_run

    run = open_run(folder)
    return run.read.payload_body(cell, n, run.manifest.format)


def payload_json(folder: Path, cell: str, n: int = 1):
    import json

    return json.loads(payload(folder, cell, n))


def dashscope_fixture(api_key: str):
    """A module-scoped pytest fixture: the fake DashScope server on 127.0.0.1 accepting `api_key`."""
    import pytest

    @pytest.fixture(scope="module")
    def server():
        from tests.servers.dashscope_server import serve

        with serve(api_key=api_key) as srv:
            yield srv

    return server


class Hang(BaseException):
    """The command did not finish in time (a BaseException: the CLI's own handlers do not catch it)."""


def _vm_size() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))


@contextlib.contextmanager
def guarded(seconds: int = 20, memory: int = 2 << 30) -> Iterator[None]:
    """Raise `Hang` after `seconds`; let the process map at most `memory` bytes more than it has
    (an allocation past that is a MemoryError). Both limits are put back on the way out."""
    def on_alarm(signum, frame):
        raise Hang(f"no answer in {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _vm_size() + memory
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
