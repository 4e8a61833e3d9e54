"""Shared fixtures and the markers the fast loop selects on.

- `slow`: a test that takes seconds of its own (a real browser, a Milvus server, a subprocess about
  the process itself, a big data set). `pytest -m "not slow"` is the inner loop.
  A Milvus Lite export (the `milvus_lite` fixture) counts as slow: it starts a server process.
- `browser`: a test that launches Chromium; applied from the `chromium` fixture, so only the tests
  that really launch it skip where it is missing.
Markers follow the fixtures a test uses (`MARKS_BY_FIXTURE`), so a new test gets them by asking for
the fixture, not by remembering a decorator.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import Result, cli_env, run_cli

# A suite started in the background of a non-interactive shell (`.ci/run &`, nohup) inherits SIGINT
# ignored, and so would every process a test starts: the Ctrl-C tests would see their run finish
# instead of stop. Python's own handler is put back in this process (and each xdist worker), so a
# child starts with SIGINT at its default whatever started the suite.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

MARKS_BY_FIXTURE = {
    "chromium": ("browser", "slow"),
    "milvus_server": ("slow",),
    "milvus_lite": ("slow",),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in getattr(item, "fixturenames", ()):
            for mark in MARKS_BY_FIXTURE.get(name, ()):
                item.add_marker(mark)


def _chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """Headless Chromium with the flags this closed network needs, a new profile per call."""

    def __init__(self, binary: str, profiles: Path) -> None:
        self.binary, self.profiles = binary, profiles

    def __call__(self, args: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
        profile = self.profiles / f"profile-{len(list(self.profiles.glob('profile-*')))}"
        cmd = [self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={profile}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(autouse=True)
def virtual_time(monkeypatch):
    """Every wait of the limiter, backoff, Retry-After and replica downtime is on a virtual clock:
    no test waits on the wall clock for pacing (a test that checks pacing reads this clock, or
    sets its own). HTTP timeouts stay real: they are what such a test is about."""
    from harness.execute import limiter

    clock = limiter.VirtualClock()
    monkeypatch.setattr(limiter, "DEFAULT_CLOCK", clock)
    return clock


@pytest.fixture
def chromium(tmp_path_factory) -> Chromium:
    """Run headless Chromium (skips, with the install command, where it is missing)."""
    binary = _chromium_binary()
    if binary is None:
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return Chromium(binary, tmp_path_factory.mktemp("chromium"))


@pytest.fixture
def milvus_lite():
    """A test that loads vectors into Milvus Lite: each database it opens starts a milvus-lite server
    process (most of a second), so these run outside the fast loop."""
    pytest.importorskip("milvus_lite")


@pytest.fixture
def cli(tmp_path):
    """`cli("run", spec, ..., env={...}, cwd=...)`: the harness CLI in-process, isolated as a user's
    shell would be (HOME and the cache in tmp_path, no DASHSCOPE_*/HARNESS_*/CI variables)."""

    def call(*args, cwd: Path | None = None, env: dict | None = None, input: str | None = None) -> Result:
        return run_cli(*args, cwd=cwd or tmp_path, env=cli_env(tmp_path / "home", tmp_path / "cache", **(env or {})),
                       input=input)

    return call


@pytest.fixture(scope="module")
def dashscope_server():
    """The fake DashScope server on 127.0.0.1 (an ephemeral port), accepting `tests.helpers.TEST_KEY`."""
    from tests.helpers import TEST_KEY
    from tests.servers.dashscope_server import serve

    with serve(api_key=TEST_KEY) as srv:
        yield srv
