"""Small helpers shared by the tests: run the real CLI, write specs and images."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SPECS = REPO / "specs"


def harness(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m harness ...` as a user would, in `cwd`, with a clean key-less environment."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("DASHSCOPE_", "OUTPUT_DIR", "ALIBABA_CLOUD", "ALICLOUD", "HARNESS_ALLOW_HOSTS",
                                                                   "HARNESS_MAX_PAYLOAD_BYTES"))}
    e.setdefault("HARNESS_CACHE_DIR", str(cwd / ".cache"))
    e["HOME"] = str(cwd)              # no ~/.dashscope or ~/.alibabacloud key from the developer's machine
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=e, capture_output=True,
                          text=True, timeout=timeout)


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


def dashscope_fixture(api_key: str):
    """A module-scoped pytest fixture: the fake DashScope server on 127.0.0.1 accepting `api_key`."""
    import pytest

    @pytest.fixture(scope="module")
    def server():
        sys.path.insert(0, str(Path(__file__).parent / "servers"))
        from dashscope_server import serve

        with serve(api_key=api_key) as srv:
            yield srv

    return server
