"""Local files through DashScope's temporary storage (`upload_local_files: true`), end to end:
the real CLI against the fake server's policy endpoint and storage form on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import Result, cli_env, dashscope_fixture, run_cli
from tests.servers.dashscope_server import (
    POLICY_ACCESS_KEY_ID,
    POLICY_DOCUMENT,
    POLICY_SIGNATURE,
    vector,
)

KEY = "sk-upload-e2e-99887766554433"
ROOT = Path(__file__).resolve().parents[1]
CID = "qwen3-vl-embedding-256"
SECRETS = (KEY, POLICY_SIGNATURE, POLICY_ACCESS_KEY_ID, POLICY_DOCUMENT)
# The first bytes of an MP4 (an ISO `ftyp` box); the rest is filler, as the server never decodes it.
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(range(256)) * 40

server = dashscope_fixture(KEY)


@pytest.fixture(autouse=True)
def fresh(server):
    server.reset()
    yield
    server.settle()


def write(tmp_path: Path, *, upload: bool = True, region: str = "cn-beijing",
          model: str = "qwen3-vl-embedding", dims: str = "[256]", big_image: bool = True) -> Path:
    (tmp_path / "clips").mkdir(exist_ok=True)
    (tmp_path / "clips" / "street.mp4").write_bytes(MP4)
    inputs = ["  - id: caption\n    text: a street at night", "  - id: street\n    video: clips/street.mp4"]
    if big_image:   # over qwen3-vl's 5 MB per image: a data URI would be refused
        (tmp_path / "big.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(5_100_000))
        inputs.append("  - id: big\n    image: big.png")
    spec = (f"version: 1\nname: up\nregion: {region}\nmodels: [{model}]\ndimensions: {dims}\n"
            + ("upload_local_files: true\n" if upload else "")
            + "inputs:\n" + "\n".join(inputs) + "\n")
    path = tmp_path / "spec.yaml"
    path.write_text(spec)
    return path


def cli(tmp_path: Path, *args: str) -> Result:
    env = cli_env(tmp_path / "home", tmp_path / "cache", NO_COLOR="1", COLUMNS="200", DASHSCOPE_API_KEY=KEY)
    return run_cli(*args, cwd=ROOT, env=env)


def run(tmp_path: Path, server, *extra: str) -> Result:
    return cli(tmp_path, "run", str(tmp_path / "spec.yaml"), "--output", str(tmp_path / "out"), "--execute",
               "--quiet", "--base-url", server.base_url, *extra)


def no_secret_anywhere(tmp_path: Path, proc: Result) -> None:
    for path in [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".png"]:
        data = path.read_bytes()
        for secret in SECRETS:
            assert secret.encode() not in data, f"{secret[:10]}… leaked into {path}"
    for secret in SECRETS:
        assert secret not in proc.stdout + proc.stderr


def responses(tmp_path: Path) -> list[dict]:
    lines = (tmp_path / "out" / "up" / "responses" / f"{CID}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_a_local_video_without_the_opt_in_is_refused_with_the_fix(tmp_path):
    write(tmp_path, upload=False, big_image=False)
    proc = cli(tmp_path, "validate", str(tmp_path / "spec.yaml"))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert ("spec.yaml:10:12:" in proc.stdout + proc.stderr
            and "video 'clips/street.mp4' is not a URL" in proc.stdout + proc.stderr)
    assert "upload_local_files: true" in proc.stdout + proc.stderr


def test_upload_outside_beijing_is_an_error_at_the_key_with_the_alternatives(tmp_path):
    write(tmp_path, region="ap-southeast-1", model="tongyi-embedding-vision-plus", dims="default", big_image=False)
    proc = cli(tmp_path, "validate", str(tmp_path / "spec.yaml"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert "spec.yaml:6:1" in out and "temporary storage for local files exists only in cn-beijing" in out, out
    assert "data URIs" in out and "http(s):// URLs" in out


def test_run_uploads_video_and_large_image_records_oss_urls_and_verifies(server, tmp_path):
    write(tmp_path)
    video_sha = hashlib.sha256(MP4).hexdigest()
    image_sha = hashlib.sha256((tmp_path / "big.png").read_bytes()).hexdigest()
    proc = run(tmp_path, server)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "out" / "up"

    # the payload file holds stand-ins tied to the bytes, never an oss:// URL or a 7 MB data URI
    payload = payload_text = (folder / "payloads" / CID / "requests.jsonl").read_text()
    assert f'"upload:sha256:{video_sha}"' in payload and f'"upload:sha256:{image_sha}"' in payload
    assert "oss://" not in payload and len(payload) < 2000
    # what was sent: oss:// URLs with the resolve header; the storage never saw the key
    assert [e["kind"] for e in server.upload_log] == ["policy", "storage", "policy", "storage"]
    assert all(e["status"] == 200 for e in server.upload_log)
    assert not any(e["auth"] for e in server.upload_log if e["kind"] == "storage")
    assert sorted(server.objects.values(), key=len) == [MP4, (tmp_path / "big.png").read_bytes()]
    # the evidence names each URL sent and when it expires
    (line,) = responses(tmp_path)
    uploads = {u["sha256"]: u for u in line["uploads"]}
    assert set(uploads) == {video_sha, image_sha}
    for u in uploads.values():
        assert u["url"].startswith("oss://dashscope-instant/fake/") and u["url"][6:] in server.objects
        assert u["expires_at"].endswith("Z") and u["reused"] is False
    # the server embedded the uploaded bytes
    ids = json.loads((folder / "vectors" / f"{CID}.ids.json").read_text())
    matrix = np.load(folder / "vectors" / f"{CID}.npy")
    np.testing.assert_allclose(matrix[ids.index("street")], vector({"video": f"sha256:{video_sha}"}, 256), rtol=1e-6)
    # inputs.jsonl / manifest record the local video like a local image
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"path": "clips/street.mp4", "sha256": video_sha, "size": len(MP4), "role": "video",
            "mime": "video/mp4"} in manifest["inputs"]["files"]
    assert manifest["cells"][0]["upload_local_files"] is True

    check = cli(tmp_path, "verify", str(folder), "--spec-dir", str(tmp_path))   # the tests run from the repo
    assert check.returncode == 0 and "2 local inputs unchanged" in check.stdout, check.stdout + check.stderr
    no_secret_anywhere(tmp_path, proc)
    record = json.loads((tmp_path / "cache" / "uploads.json").read_text())
    assert len(record["entries"]) == 2

    # a re-run within 48 h (past the response cache) sends the same URLs without uploading again
    payload_hashes = {k: v for k, v in manifest["files"].items() if k.startswith("payloads/")}
    again = run(tmp_path, server, "--refresh")
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(server.upload_log) == 4, "no new policy or upload"
    (line2,) = responses(tmp_path)
    assert {u["sha256"]: u["url"] for u in line2["uploads"]} == {k: u["url"] for k, u in uploads.items()}
    assert all(u["reused"] for u in line2["uploads"])
    planned = {k: v for k, v in json.loads((folder / "manifest.json").read_text())["files"].items()
               if k.startswith("payloads/")}
    assert planned == payload_hashes, "the same payload files: an upload changes no cache key"
    assert (folder / "payloads" / CID / "requests.jsonl").read_text() == payload_text

    # 48 h later the record has expired (its time moved back, as the clock would): upload again
    from harness.providers.uploads import LIFETIME

    for entry in record["entries"].values():
        entry["expires"] -= LIFETIME
    (tmp_path / "cache" / "uploads.json").write_text(json.dumps(record))
    third = run(tmp_path, server, "--refresh")
    assert third.returncode == 0, third.stdout + third.stderr
    assert [e["kind"] for e in server.upload_log[4:]] == ["policy", "storage", "policy", "storage"]
    (line3,) = responses(tmp_path)
    assert not any(u["reused"] for u in line3["uploads"])
    assert {u["url"] for u in line3["uploads"]}.isdisjoint(u["url"] for u in line2["uploads"])
    assert cli(tmp_path, "verify", str(folder), "--spec-dir", str(tmp_path)).returncode == 0

    # `verify --reexecute` sends a sample again: with no upload record left, the stand-ins are
    # resolved from the run's recorded input files (inside the spec's folder, never where the
    # folder's recorded paths would lead), uploaded afresh, and the vectors agree
    (tmp_path / "cache" / "uploads.json").unlink()
    served = len(server.served())
    redo = cli(tmp_path, "verify", str(folder), "--spec-dir", str(tmp_path), "--reexecute",
               "--base-url", server.base_url)
    assert redo.returncode == 0, redo.stdout + redo.stderr
    assert len(server.served()) == served + 1 and len(server.upload_log) == 12
    no_secret_anywhere(tmp_path, redo)


def test_the_record_reuses_an_upload_only_while_it_has_time_to_live(tmp_path):
    from harness.providers.uploads import LIFETIME, REUSE_MARGIN, UploadRecord

    now = [1_000_000.0]
    record = UploadRecord(tmp_path, clock=lambda: now[0])
    key = UploadRecord.key("ab" * 32, "qwen3-vl-embedding", "dashscope.aliyuncs.com")
    record.put(key, "oss://dir/a.mp4", now[0] + LIFETIME)
    now[0] += LIFETIME - REUSE_MARGIN - 60
    assert record.get(key)["url"] == "oss://dir/a.mp4"
    assert record.get(UploadRecord.key("ab" * 32, "tongyi-embedding-vision-plus", "dashscope.aliyuncs.com")) is None
    now[0] += 120
    assert record.get(key) is None


def test_a_refused_policy_fails_the_run_at_once_with_exit_4(server, tmp_path):
    write(tmp_path, big_image=False)
    server.add_fault("policy-refused", times=-1)
    proc = run(tmp_path, server)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out
    (line,) = responses(tmp_path)
    assert line["error"]["code"] == "UploadPolicyRefused" and "AccessDenied" in line["error"]["message"]
    assert "data URIs" in line["error"]["message"]
    assert [e["kind"] for e in server.upload_log] == ["policy"], "refused: not retried, nothing uploaded"
    assert not server.served()
    no_secret_anywhere(tmp_path, proc)


def test_a_failed_upload_is_reported_without_the_policy_signature(server, tmp_path):
    write(tmp_path, big_image=False)
    server.add_fault("storage-403", times=-1)
    proc = run(tmp_path, server)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    (line,) = responses(tmp_path)
    assert line["error"]["code"] == "UploadFailed" and "HTTP 403" in line["error"]["message"]
    assert "Policy expired" in line["error"]["message"]
    assert not server.served() and not server.objects
    no_secret_anywhere(tmp_path, proc)


def test_a_storage_hiccup_is_retried(server, tmp_path):
    write(tmp_path, big_image=False)
    server.add_fault("storage-500", times=1)
    proc = run(tmp_path, server)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [e["status"] for e in server.upload_log if e["kind"] == "storage"] == [500, 200]
    assert len(server.served()) == 1


def test_a_storage_host_that_is_not_allowed_gets_nothing(server, tmp_path):
    write(tmp_path, big_image=False)
    server.storage_host = "http://198.51.100.7:9/_oss"
    proc = run(tmp_path, server)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    (line,) = responses(tmp_path)
    assert line["error"]["code"] == "UploadHostRefused" and "198.51.100.7:9" in line["error"]["message"]
    assert [e["kind"] for e in server.upload_log] == ["policy"] and not server.served()


def test_a_storage_host_allowed_by_allow_host_gets_the_file(server, tmp_path):
    """Storage on another host than the API (`localhost` vs 127.0.0.1): refused by default, sent when the
    person running the command allows it with --allow-host (a spec can never allow it)."""
    write(tmp_path, big_image=False)
    server.storage_host = server.base_url.removesuffix("/api/v1").replace("127.0.0.1", "localhost") + "/_oss"
    refused = run(tmp_path, server)
    assert refused.returncode == 4 and not server.served(), refused.stdout + refused.stderr
    port = server.base_url.split(":")[2].split("/")[0]
    allowed = run(tmp_path, server, "--allow-host", f"localhost:{port}")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert [e["kind"] for e in server.upload_log][-2:] == ["policy", "storage"]


def test_a_large_image_without_the_opt_in_names_the_upload_as_a_fix(tmp_path):
    write(tmp_path, upload=False)
    (tmp_path / "spec.yaml").write_text((tmp_path / "spec.yaml").read_text().replace(
        "  - id: street\n    video: clips/street.mp4\n", ""))
    proc = cli(tmp_path, "validate", str(tmp_path / "spec.yaml"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert "qwen3-vl-embedding takes at most 5,000,000 bytes per image" in out and "upload_local_files: true" in out


def test_one_file_for_two_cells_of_a_model_is_uploaded_once(server, tmp_path):
    write(tmp_path, dims="[256, 512]", big_image=False)
    proc = run(tmp_path, server)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [e["kind"] for e in server.upload_log] == ["policy", "storage"]
    urls = set()
    for cid in ("qwen3-vl-embedding-256", "qwen3-vl-embedding-512"):
        (line,) = [json.loads(x) for x in (tmp_path / "out/up/responses" / f"{cid}.jsonl").read_text().splitlines()]
        urls |= {u["url"] for u in line["uploads"]}
    assert len(urls) == 1


@pytest.mark.parametrize("data, where, message", [
    (b"just some text, not a video at all" * 10, "spec.yaml:11:12",
     "'clips/street.mp4' is not a video (its bytes match no video container)"),
    (b"\x1aE\xdf\xa3" + bytes(500), "spec.yaml:10:5",   # a model rule: at the input, as for images
     "video 'clips/street.mp4' is MKV; qwen3-vl-embedding accepts MP4, AVI, MOV"),
])
def test_a_local_video_is_checked_by_its_bytes_before_anything_is_sent(tmp_path, data, where, message):
    write(tmp_path, big_image=False)
    (tmp_path / "clips" / "street.mp4").write_bytes(data)
    proc = cli(tmp_path, "validate", str(tmp_path / "spec.yaml"))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 3, out
    assert where in out and message in out, out


def test_a_request_refused_after_the_upload_still_records_the_url_it_sent(server, tmp_path):
    write(tmp_path, big_image=False)
    server.add_fault("400", times=-1, match="oss://")
    proc = run(tmp_path, server)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    (line,) = responses(tmp_path)
    assert line["error"]["code"] == "InvalidParameter" and line["status"] == 400
    (upload,) = line["uploads"]
    assert upload["url"][6:] in server.objects and upload["sha256"] == hashlib.sha256(MP4).hexdigest()


def test_a_recorded_upload_the_service_no_longer_has_is_uploaded_again(server, tmp_path):
    write(tmp_path, big_image=False)
    assert run(tmp_path, server).returncode == 0
    server.objects.clear()   # the storage purged the file before its 48 hours were up
    proc = run(tmp_path, server, "--refresh")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [e["kind"] for e in server.upload_log] == ["policy", "storage"] * 2
    (line,) = responses(tmp_path)
    assert line["attempts"] == 2 and [u["reused"] for u in line["uploads"]] == [False]
    assert line["uploads"][0]["url"][6:] in server.objects
