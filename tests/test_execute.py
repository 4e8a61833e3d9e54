"""The execution engine over real HTTP on 127.0.0.1: the evidence it writes, retries, early stops,
quotas, the cache, resuming after an interrupt, and the key never reaching anything written.

Every wait of the engine (backoff, Retry-After, quota pacing) and the fake server's quota window
run on one virtual clock: a minute of pacing takes milliseconds, and its spacing is measured exactly."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from harness.execute import ExecuteOptions, RateLimiter, execute_run, limiter
from harness.execute.cache import BATCH, ResponseCache
from harness.execute.limiter import VirtualClock
from tests.helpers import dashscope_fixture
from tests.servers.dashscope_server import stage_payloads, text_requests, vector

KEY = "sk-engine-test-9a8b7c6d5e4f"
MODEL = "qwen3-vl-embedding"
CID = "qwen3-vl-embedding-256"
ROOT = Path(__file__).resolve().parents[1]


server = dashscope_fixture(KEY)


@pytest.fixture
def clock(server, monkeypatch):
    """One virtual clock for the engine (its default clock here) and the server's quota window."""
    virtual = VirtualClock()
    monkeypatch.setattr(limiter, "DEFAULT_CLOCK", virtual)
    server.clock = virtual
    yield virtual
    server.clock = None


@pytest.fixture(autouse=True)
def env(server, clock, monkeypatch, tmp_path):
    server.reset()
    server.latency = 0.0
    server.rpm = None
    monkeypatch.setenv("DASHSCOPE_API_KEY", KEY)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DASHSCOPE_WORKSPACE", raising=False)
    yield
    server.settle()


def cell(server, cid=CID, model=MODEL, dimension=256, **extra):
    return {"id": cid, "model": model, "provider": "dashscope", "endpoint": server.url,
            "dimension": dimension, "required": True, **extra}


def options(tmp_path, **kw) -> ExecuteOptions:
    base = dict(cache_dir=tmp_path / "cache", backoff_base=0.02, backoff_max=0.2, timeout=5.0, quiet=True,
                concurrency=4)
    base.update(kw)
    return ExecuteOptions(**base)


def staged(tmp_path, n=6, per=2, cid=CID, model=MODEL, dimension=256, name="run"):
    folder = tmp_path / name
    stage_payloads(folder, cid, text_requests(model, dimension, n, per))
    return folder


def lines(summary):
    return [c.line() for c in summary.checks]


def test_evidence_follows_the_output_folder_contract(server, tmp_path):
    folder = staged(tmp_path, n=5, per=3)
    summary = execute_run(folder, [cell(server)], options(tmp_path))
    assert summary.ok and summary.fatal is None
    assert lines(summary) == [f"ok   execution [{CID}]: all 5 requests succeeded",
                              f"ok   dimensions [{CID}]: 15 vectors of 256 floats, as requested"]
    matrix = np.load(folder / "vectors" / f"{CID}.npy")
    ids = json.loads((folder / "vectors" / f"{CID}.ids.json").read_text())
    assert matrix.dtype == np.float32 and matrix.shape == (15, 256)
    assert ids == [f"t{i}" for i in range(15)]
    for row, input_id in zip(matrix, ids):  # row i is the vector of ids[i], in index order
        np.testing.assert_allclose(row, vector({"text": f"text number {input_id}"}, 256), rtol=1e-6)
    records = [json.loads(x) for x in (folder / "responses" / f"{CID}.jsonl").read_text().splitlines()]
    assert [r["file"] for r in records] == [f"{i:05d}.json" for i in range(5)]
    for r in records:
        assert r["status"] == 200 and r["attempts"] == 1 and r["cache_hit"] is False and r["error"] is None
        assert r["request_id"] and r["latency_ms"] > 0 and r["usage"]["input_tokens"] > 0
    doc = json.loads((folder / "execution.json").read_text())
    entry = doc["cells"][0]
    assert entry["executed"] and entry["vectors"] == 15 and entry["dimension"] == 256
    assert entry["requests"]["ok"] == 5 and entry["requests"]["failed"] == 0
    assert abs(entry["norms"]["mean"] - 1) < 1e-5
    assert entry["usage"]["input_tokens"] == sum(r["usage"]["input_tokens"] for r in records)
    assert entry["estimated_cost"]["currency"] == "CNY" and entry["estimated_cost"]["amount"] > 0


@pytest.mark.parametrize("kind", ["429", "429-retry-after", "500", "503",
                                  pytest.param("slow", marks=pytest.mark.slow),   # a real HTTP timeout, waited for
                                  "drop", "malformed", "error-200"])
def test_transient_faults_are_retried_until_every_request_succeeds(server, tmp_path, kind):
    folder = staged(tmp_path, n=4)
    server.add_fault(kind, times=2, match="text number t2", retry_after=0.3, delay=0.7)
    summary = execute_run(folder, [cell(server)], options(tmp_path, timeout=0.5 if kind == "slow" else 5.0))
    out = summary.cells[0]
    assert summary.ok, lines(summary)
    assert (out.ok, out.retries, out.attempts) == (4, 2, 6)
    assert out.throttled == (2 if kind.startswith("429") else 0)
    record = json.loads((folder / "responses" / f"{CID}.jsonl").read_text().splitlines()[1])
    assert record["attempts"] == 3 and record["status"] == 200
    if kind == "429-retry-after":  # Retry-After: 0.3 s is waited out before each retry, and no more
        times = [r.t for r in server.log if r.body and "text number t2" in json.dumps(r.body)]
        assert len(times) == 3
        assert [times[1] - times[0], times[2] - times[1]] == [pytest.approx(0.3, abs=0.05)] * 2
        assert min(times[1] - times[0], times[2] - times[1]) >= 0.3 - 1e-9


def test_exhausted_retries_fail_one_request_and_keep_the_rest(server, tmp_path):
    folder = staged(tmp_path, n=4)
    server.add_fault("503", times=-1, match="text number t4")          # request 2 carries t4, t5
    summary = execute_run(folder, [cell(server)], options(tmp_path, max_attempts=3))
    out = summary.cells[0]
    assert not summary.ok and summary.fatal is None
    assert (out.ok, out.failed, out.vectors, out.expected_vectors) == (3, 1, 6, 8)
    assert lines(summary)[0].startswith(f"FAIL execution [{CID}]: 1 of 4 requests failed (first: 00002.json: "
                                        "HTTP 503: ServiceUnavailable")
    assert "gave up after 3 attempts" in lines(summary)[0] and "request_id=" in lines(summary)[0]
    assert (lines(summary)[1].endswith("8 vectors expected; 2 inputs have none")
            or "2 inputs have none" in lines(summary)[1])
    ids = json.loads((folder / "vectors" / f"{CID}.ids.json").read_text())
    assert ids == ["t0", "t1", "t2", "t3", "t6", "t7"]
    assert np.load(folder / "vectors" / f"{CID}.npy").shape == (6, 256)
    assert sum(1 for r in server.log if r.body and "text number t4" in json.dumps(r.body)) == 3


@pytest.mark.parametrize("kind, code", [("wrong-length", "WrongDimension"), ("missing-index", "MissingIndex"),
                                        ("nan", "NonFinite"), ("400", "InvalidParameter")])
def test_answers_that_break_the_contract_are_recorded_not_kept(server, tmp_path, kind, code):
    folder = staged(tmp_path, n=3)
    server.add_fault(kind, times=-1, match="text number t2")
    summary = execute_run(folder, [cell(server)], options(tmp_path))
    out = summary.cells[0]
    assert (out.ok, out.failed, out.vectors) == (2, 1, 4)
    record = json.loads((folder / "responses" / f"{CID}.jsonl").read_text().splitlines()[1])
    assert record["error"]["code"] == code and record["attempts"] == 1   # not retried
    assert f": {code}" in lines(summary)[0] and lines(summary)[0].startswith("FAIL")
    dims = lines(summary)[1]
    assert dims.startswith("FAIL dimensions") if kind == "wrong-length" else dims.startswith("ok   dimensions")
    with ResponseCache(tmp_path / "cache") as stored:
        assert len(stored) == 2                        # the two answers, not the failure


def test_a_bad_key_stops_the_run_early_and_says_why(server, tmp_path, monkeypatch):
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-not-the-right-one")
    folder = staged(tmp_path, n=40)
    summary = execute_run(folder, [cell(server)], options(tmp_path, concurrency=2))
    assert summary.fatal is not None and summary.fatal.code == "InvalidApiKey" and summary.fatal.status == 401
    assert len(server.log) <= 3, "stops after the first 401 instead of sending all 40"
    out = summary.cells[0]
    assert out.not_sent >= 37 and out.ok == 0
    line = lines(summary)[0]
    assert line.startswith("FAIL execution") and "not sent (stopped early: HTTP 401: InvalidApiKey" in line
    assert "request_id=" in line
    doc = json.loads((folder / "execution.json").read_text())
    assert doc["fatal"]["code"] == "InvalidApiKey" and doc["fatal"]["request_id"]


def test_cells_that_cannot_run_are_reported_and_the_others_run(server, tmp_path, monkeypatch):
    folder = staged(tmp_path, n=2)
    stage_payloads(folder, "openai-extra", [({"model": "m", "input": ["x"]}, ["x"])])
    stage_payloads(folder, "qwen3-vl-embedding-1024", text_requests(MODEL, 1024, 1))
    monkeypatch.delenv("MISSING_TEST_KEY", raising=False)
    cells = [cell(server),
             {"id": "openai-extra", "model": "m", "provider": "openai", "endpoint": "http://127.0.0.1:9/v1/embeddings",
              "dimension": 8, "required": False, "api_key_env": "MISSING_TEST_KEY"},
             {"id": "no-payloads", "model": MODEL, "provider": "dashscope", "endpoint": server.url,
              "dimension": 512, "required": True}]
    summary = execute_run(folder, cells, options(tmp_path))
    by_cell = {c.cell: c for c in summary.checks if c.name == "execution"}
    assert by_cell[CID].passed
    assert by_cell["openai-extra"].passed and "MISSING_TEST_KEY" in by_cell["openai-extra"].detail
    assert "optional" in by_cell["openai-extra"].detail
    assert not by_cell["no-payloads"].passed and "no payload index" in by_cell["no-payloads"].detail
    doc = {c["id"]: c for c in json.loads((folder / "execution.json").read_text())["cells"]}
    assert doc["openai-extra"]["executed"] is False and doc["openai-extra"]["reason"]
    assert not (folder / "vectors" / "openai-extra.npy").exists()


def test_missing_key_names_the_three_places_and_sends_nothing(server, tmp_path, monkeypatch):
    monkeypatch.delenv("DASHSCOPE_API_KEY")
    folder = staged(tmp_path, n=2)
    summary = execute_run(folder, [cell(server)], options(tmp_path))
    assert len(server.log) == 0 and not summary.ok
    detail = summary.checks[0].detail
    assert "DASHSCOPE_API_KEY" in detail and ".alibabacloud/credentials" in detail and ".dashscope/api_key" in detail


def test_a_changed_payload_is_refused_not_sent(server, tmp_path):
    folder = staged(tmp_path, n=2)
    bodies = folder / "payloads" / CID / "requests.jsonl"
    lines = bodies.read_bytes().split(b"\n")
    lines[1] = b'{"model":"qwen3-vl-embedding","input":{"contents":["x"]}}'    # the second request, 00001.json
    bodies.write_bytes(b"\n".join(lines))
    summary = execute_run(folder, [cell(server)], options(tmp_path))
    assert len(server.log) == 1 and summary.cells[0].failures[0]["code"] == "PayloadChanged"


def test_rerun_hits_the_cache_and_no_cache_refresh_send_again(server, tmp_path):
    folder = staged(tmp_path, n=5)
    execute_run(folder, [cell(server)], options(tmp_path))
    assert len(server.log) == 5
    first = np.load(folder / "vectors" / f"{CID}.npy")
    again = execute_run(folder, [cell(server)], options(tmp_path))
    assert len(server.log) == 5 and again.cells[0].cache_hits == 5
    assert "(5 from cache)" in lines(again)[0]
    np.testing.assert_array_equal(np.load(folder / "vectors" / f"{CID}.npy"), first)
    records = [json.loads(x) for x in (folder / "responses" / f"{CID}.jsonl").read_text().splitlines()]
    assert all(r["cache_hit"] and r["request_id"] and r["attempts"] == 0 for r in records)
    execute_run(folder, [cell(server)], options(tmp_path, refresh=True))
    assert len(server.log) == 10
    execute_run(folder, [cell(server)], options(tmp_path, use_cache=False, cache_dir=tmp_path / "nocache"))
    assert len(server.log) == 15 and not (tmp_path / "nocache").exists()
    # another endpoint is another cache key
    other = dict(cell(server), endpoint=server.url.replace("127.0.0.1", "localhost"))
    execute_run(folder, [other], options(tmp_path))
    assert len(server.log) == 20


def test_the_client_limiter_uses_the_quota_without_throttles(server, tmp_path, clock):
    server.rpm, server.window = 10, 60.0                # the service: 10 requests per minute
    folder = staged(tmp_path, n=14, per=1)
    summary = execute_run(folder, [cell(server)], options(tmp_path, rpm=10, concurrency=8, clock=clock))
    assert summary.ok and summary.cells[0].throttled == 0
    assert server.counts.get("429:rpm", 0) == 0 and len(server.log) == 14
    sent = [r.t for r in server.log]                    # as the server counted them, on the one clock
    interval = 60.0 / (10 * 0.98)                       # evenly spaced at 98 % of the quota
    assert min(b - a for a, b in zip(sent, sent[1:])) >= interval - 1e-6
    assert max(sum(t <= s < t + 60.0 for s in sent) for t in sent) == 10   # a full minute, never more
    assert sent[-1] - sent[0] == pytest.approx(13 * interval, rel=0.01)   # and no slower than asked


def test_without_the_limiter_throttles_are_retried_to_completion(server, tmp_path):
    server.rpm, server.window = 5, 0.5
    folder = staged(tmp_path, n=12, per=1)
    # 12 requests at 5 per 0.5 s need > 1 s: about 10 backoffs of at most 0.2 s each, so room for 20
    summary = execute_run(folder, [cell(server)], options(tmp_path, rpm=0, concurrency=6, max_attempts=20))
    assert summary.ok, lines(summary)
    assert summary.cells[0].throttled > 0 and server.counts["429:rpm"] == summary.cells[0].throttled


def test_rate_limiter_never_lets_a_window_hold_more_than_the_quota():
    """The sliding-window guard: request k+N waits for request k's answer plus a window, even
    when even spacing alone would let it go (here the spacing is off: infinite headroom)."""
    clock = VirtualClock()

    async def go():
        limiter = RateLimiter(rpm=3, tpm=None, window=60.0, headroom=float("inf"), clock=clock)
        sent, slots = [], []
        for _ in range(3):
            slots.append(await limiter.acquire())
            sent.append(clock.now())
        clock.advance(5.0)                          # the three answers take 5 s
        answered = clock.now()
        for s in slots:
            RateLimiter.release(s)
        for _ in range(3):
            RateLimiter.release(await limiter.acquire())
            sent.append(clock.now())
        return sent, answered
    sent, answered = asyncio.run(go())
    assert sent[:3] == [0.0, 0.0, 0.0]              # the first three go at once (no spacing asked)
    assert sent[3:] == [pytest.approx(answered + 60.0)] * 3   # the next wait for the answers + a window
    limiter = RateLimiter(rpm=600, tpm=6000, window=60, headroom=1.0)   # 10 req/s, 100 tokens/s
    assert limiter.interval == pytest.approx(0.1) and limiter.token_rate == pytest.approx(100)


def test_progress_is_silent_off_a_terminal_and_shows_counts_on_one(server, tmp_path):
    folder = staged(tmp_path, n=3)
    piped = io.StringIO()
    execute_run(folder, [cell(server)], options(tmp_path, quiet=False), console=Console(file=piped))
    assert piped.getvalue() == ""
    tty = io.StringIO()
    execute_run(folder, [cell(server)], options(tmp_path, quiet=False, refresh=True),
                console=Console(file=tty, force_terminal=True, width=140))
    assert "3/3" in tty.getvalue() and KEY not in tty.getvalue()
    quiet = io.StringIO()
    execute_run(folder, [cell(server)], options(tmp_path, quiet=True), console=Console(file=quiet, force_terminal=True))
    assert quiet.getvalue() == ""


def test_the_key_never_reaches_a_file_or_the_output(server, tmp_path, capfd):
    folder = staged(tmp_path, n=6)
    server.add_fault("401", match="text number t10")        # an error answer, with the key's hint
    server.add_fault("500", times=2)
    server.add_fault("drop")
    tty = io.StringIO()
    summary = execute_run(folder, [cell(server)], options(tmp_path, quiet=False),
                          console=Console(file=tty, force_terminal=True))
    texts = [tty.getvalue(), repr(summary), str(summary.fatal), "\n".join(lines(summary))]
    out, err = capfd.readouterr()
    texts += [out, err]
    assert summary.fatal is not None  # the 401 made it into the summary ...
    for text in texts:
        assert KEY not in text
    files = [p for root in (folder, tmp_path / "cache") for p in root.rglob("*") if p.is_file()]
    assert len(files) >= 6       # payload index and bodies, vectors and ids, responses, execution.json, the cache
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path


INTERRUPTED_RUN = """
import sys
from pathlib import Path
from harness.execute import ExecuteOptions, execute_run
cell = {cell!r}
try:
    execute_run(Path({folder!r}), [cell], ExecuteOptions(cache_dir=Path({cache!r}), concurrency=2, quiet=True))
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.slow                 # a process of its own: what a signal does to it
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT"])
def test_an_interrupted_run_keeps_what_it_received_and_a_rerun_sends_only_the_rest(server, tmp_path, how):
    server.latency = 0.03
    folder = staged(tmp_path, n=40, per=1)
    script = INTERRUPTED_RUN.format(cell=cell(server), folder=str(folder), cache=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while len(server.served()) < 10 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(getattr(signal, how))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == (-9 if how == "SIGKILL" else 130), err.decode()[-2000:]
    assert b"Traceback" not in err
    assert not (folder / "execution.json").exists() and not (folder / "vectors").exists()
    received = len(server.served())
    assert 10 <= received < 40
    with ResponseCache(tmp_path / "cache") as stored:
        entries = stored.keys()
    # at most the in-flight answers are lost, and with kill -9 the last uncommitted batch
    lost = BATCH if how == "SIGKILL" else 0
    assert received - 2 - lost <= len(entries) <= received
    server.reset()
    server.latency = 0.0
    summary = execute_run(folder, [cell(server)], options(tmp_path))
    assert summary.ok, lines(summary)
    assert len(server.log) == 40 - len(entries) and summary.cells[0].cache_hits == len(entries)
    assert np.load(folder / "vectors" / f"{CID}.npy").shape == (40, 256)


def test_the_callers_sigterm_handler_is_given_back(server, tmp_path):
    def mine(signum, frame):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, mine)
    try:
        execute_run(staged(tmp_path, n=1), [cell(server)], options(tmp_path))
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_token_quota_spaces_requests_by_their_tokens():
    clock = VirtualClock()

    async def go():
        limiter = RateLimiter(rpm=None, tpm=36000, window=60.0, headroom=1.0, clock=clock)   # 600 tokens/s
        RateLimiter.release(await limiter.acquire(300))
        RateLimiter.release(await limiter.acquire(300))                      # waits for the first 300
        second = clock.now()
        RateLimiter.release(await limiter.acquire(300))
        third = clock.now()
        before = limiter._tokens_free
        limiter.correct(-300)                                                # usage said 300 fewer
        return second, third, before - limiter._tokens_free
    second, third, credited = asyncio.run(go())
    assert second == pytest.approx(0.5) and third == pytest.approx(1.0) and credited == pytest.approx(0.5)


def test_an_adaptive_limiter_halves_on_a_throttle_and_adds_back_slowly():
    """Issue 15 item 3, the rule itself: AIMD when no quota is known; a known quota stays fixed."""
    clock = VirtualClock()

    async def go():
        limiter = RateLimiter(rpm=None, tpm=None, window=1.0, adaptive=True, clock=clock)
        first = []
        for _ in range(10):                        # unlimited at first: all ten go at once
            slot = await limiter.acquire()
            first.append(slot)
            RateLimiter.release(slot)
            limiter.answered()
        assert limiter.rate == 0
        limiter.throttled(first[-1])               # half of what got through in the last window
        assert limiter.rate == 5 and limiter.rpm == 5 and limiter.interval == pytest.approx(1 / (5 * 0.98))
        limiter.throttled(first[0])                # sent before the cut: the same burst, no second cut
        assert limiter.rate == 5 and limiter.cuts == 1
        for _ in range(5):                         # a window's worth of answers adds back max(1, 10%)
            limiter.answered()
        assert limiter.rate == pytest.approx(6, abs=0.1)
        later = await limiter.acquire()
        RateLimiter.release(later)
        limiter.throttled(later)                   # a new burst: halve again
        assert limiter.rate == pytest.approx(3, abs=0.1) and limiter.cuts == 2
        fixed = RateLimiter(rpm=600, tpm=None, window=60, adaptive=True, clock=clock)
        fixed.throttled(await fixed.acquire())
        assert not fixed.adaptive and fixed.rpm == 600   # a published quota is kept, not adapted
    asyncio.run(go())


def test_a_model_without_a_published_quota_adapts_to_429s(server, tmp_path, clock):
    """Issue 15 item 3: a dated 2026-03-06 snapshot has no published quota; the limiter does not run
    unlimited but adapts to the server's 429s: far fewer throttles than unlimited, and the run completes."""
    snapshot, cid = "tongyi-embedding-vision-plus-2026-03-06", "tongyi-embedding-vision-plus-2026-03-06-256"
    counts = {}
    for how, rpm in (("unlimited", 0), ("adaptive", None)):   # --rpm 0: the user's explicit "no limit"
        server.reset()
        server.rpm, server.window = 5, 0.5                      # the service's unpublished quota, scaled down
        folder = tmp_path / how
        stage_payloads(folder, cid, text_requests(snapshot, 256, 30, 1))
        summary = execute_run(folder, [cell(server, cid=cid, model=snapshot)],
                              options(tmp_path, rpm=rpm, quota_window=0.5, concurrency=4, max_attempts=30,
                                      use_cache=False, clock=clock))
        assert summary.ok, lines(summary)
        assert summary.cells[0].ok == 30
        counts[how] = server.counts.get("429:rpm", 0)
        if how == "adaptive":
            line = next(c.line() for c in summary.checks if c.name == "execution")
    assert counts["adaptive"] * 2 <= counts["unlimited"], counts
    assert "no published quota: the rate adapted to the throttles" in line


def test_the_virtual_clock_overlaps_sleeps_and_stands_still_while_a_request_is_out():
    """What the tests above rely on: concurrent sleeps end at their own times (they do not add up),
    and no time passes while a request is out (a request takes no virtual time)."""
    clock = VirtualClock()

    async def go():
        woke = []

        async def sleeper(seconds):
            await clock.sleep(seconds)
            woke.append((seconds, clock.now()))

        await asyncio.gather(sleeper(3.0), sleeper(1.0), sleeper(2.0))
        limiter = RateLimiter(rpm=None, tpm=None, clock=clock)
        slot = await limiter.acquire()               # a request goes out at t=3
        late = asyncio.create_task(sleeper(5.0))
        for _ in range(20):
            await asyncio.sleep(0)
        still = clock.now()                          # the sleeper waits for the answer
        RateLimiter.release(slot)
        await late
        return woke, still
    woke, still = asyncio.run(go())
    assert woke == [(1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (5.0, 8.0)] and still == 3.0


def test_a_spec_sets_only_the_execution_options_its_schema_names():
    from harness.execute.options import ExecuteOptions

    evil = {"concurrency": 2, "cache_dir": "/tmp/elsewhere", "allow_hosts": ["evil.example"], "clock": object()}
    options = ExecuteOptions.from_run(evil, {"timeout": 5.0})
    assert (options.concurrency, options.timeout) == (2, 5.0)
    assert options.cache_dir != "/tmp/elsewhere" and options.allow_hosts == () and options.clock is None
