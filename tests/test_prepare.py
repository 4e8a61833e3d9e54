"""`harness prepare`: the public quick-start script's flags, with a correct body."""

from __future__ import annotations

import base64
import json

from tests.helpers import copy_images, harness


def test_prepare_puts_dimension_inside_parameters_in_flag_order(tmp_path):
    copy_images(tmp_path)
    r = harness("prepare", "--image", "images/cat.png", "--text", "a cat", "--video", "https://x/v.mp4",
                "--text", "two", "--dimension", "1024", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = tmp_path / "output/aliyun-qwen-multimodal-embedding/request.json"
    assert json.loads(r.stdout) == {"ok": True, "request_path": "output/aliyun-qwen-multimodal-embedding/request.json"}
    body = json.loads(out.read_text())
    assert "dimension" not in body and body["parameters"] == {"dimension": 1024}
    assert body["model"] == "qwen3-vl-embedding"
    contents = body["input"]["contents"]
    assert [list(c)[0] for c in contents] == ["text", "text", "image", "video"]
    assert contents[2]["image"] == "data:image/png;base64," + base64.b64encode(
        (tmp_path / "images/cat.png").read_bytes()).decode()


def test_prepare_output_dir_and_explicit_output(tmp_path):
    r = harness("prepare", "--text", "hi", cwd=tmp_path, env={"OUTPUT_DIR": str(tmp_path / "o")})
    assert r.returncode == 0
    body = json.loads((tmp_path / "o/aliyun-qwen-multimodal-embedding/request.json").read_text())
    assert body["parameters"]["dimension"] == 2560          # the model's default, sent explicitly
    r = harness("prepare", "--text", "hi", "--model", "multimodal-embedding-v1", "--output", "x/req.json", cwd=tmp_path)
    assert r.returncode == 0
    assert json.loads((tmp_path / "x/req.json").read_text())["parameters"] == {}


def test_prepare_checks_the_models_rules(tmp_path):
    r = harness("prepare", "--text", "hi", "--dimension", "999", cwd=tmp_path)
    assert r.returncode == 3 and "does not support output dimension 999" in r.stderr and "2560" in r.stderr
    r = harness("prepare", "--text", "a", "--text", "b", "--model", "qwen2.5-vl-embedding", cwd=tmp_path)
    assert r.returncode == 3 and "one request" in r.stderr
    r = harness("prepare", "--video", "clip.mp4", cwd=tmp_path)
    assert r.returncode == 3 and "not a URL" in r.stderr
    assert not (tmp_path / "output").exists()


def test_prepare_refuses_a_text_that_is_not_utf8(tmp_path):
    # b"a\xff" on the command line reaches Python as "a\udcff" (surrogateescape): no request can carry it
    r = harness("prepare", "--text", "ok", "--text", "a\udcff", cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    assert "--text #2 is not valid UTF-8 text: the byte 0xff at character 2" in r.stderr
    assert "internal error" not in r.stderr and not (tmp_path / "output").exists()


def test_prepare_takes_enable_fusion_and_output_type_like_the_api(tmp_path):
    """Issue 15 item 6: every parameter the API takes has a flag; fusion gives one fused request."""
    copy_images(tmp_path)
    r = harness("prepare", "--text", "a cat", "--image", "images/cat.png", "--video", "https://x/v.mp4",
                "--enable-fusion", "--output-type", "dense", "--dimension", "1024", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    body = json.loads((tmp_path / "output/aliyun-qwen-multimodal-embedding/request.json").read_text())
    assert body["parameters"] == {"dimension": 1024, "enable_fusion": True, "output_type": "dense"}
    assert [list(c)[0] for c in body["input"]["contents"]] == ["text", "image", "video"]
    # the flag's values come from the schema's enum; a model without the parameter names the flag
    r = harness("prepare", "--text", "a", "--output-type", "sparse", cwd=tmp_path)
    assert r.returncode == 2 and "invalid choice: 'sparse'" in r.stderr and "dense" in r.stderr
    r = harness("prepare", "--text", "a", "--image", "images/cat.png", "--enable-fusion",
                "--model", "tongyi-embedding-vision-plus", cwd=tmp_path)
    assert r.returncode == 3 and "--enable-fusion: tongyi-embedding-vision-plus does not accept parameter" in r.stderr
    r = harness("prepare", "--text", "a", "--text", "b", "--enable-fusion", cwd=tmp_path)
    assert r.returncode == 3 and "--enable-fusion fuses at most one --text (got 2)" in r.stderr
    help_text = harness("prepare", "--help", cwd=tmp_path).stdout
    assert "--enable-fusion" in help_text and "--output-type {dense}" in help_text
