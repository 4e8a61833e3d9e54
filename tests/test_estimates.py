"""Issue 15 items 2-4: what a plan estimates and what a run reports it spent, per region and currency,
with the qwen-vl prompt template, the instruct text and video frames counted; after execution the
data says which figures rest on the provider's usage and which are estimates."""

from __future__ import annotations

import json

from tests.helpers import dashscope_fixture, harness, payload_json, write_spec

KEY = "sk-estimates-0a1b2c3d4e5f"
server = dashscope_fixture(KEY)


def plan_json(tmp_path, text: str) -> dict:
    write_spec(tmp_path, text)
    proc = harness("plan", "spec.yaml", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    return {c["id"]: c for c in json.loads(proc.stdout)["cells"]}


def test_singapore_is_priced_in_usd_and_totals_stay_per_currency(tmp_path):
    spec = """\
        version: 1
        name: sg
        region: ap-southeast-1
        models:
          - tongyi-embedding-vision-flash
          - {name: local/e5-small, modalities: [text]}
        inputs:
          - {id: a, text: "A cat sitting on a red chair"}
          - {id: b, image: "https://example.com/cat.png"}
        """
    cells = plan_json(tmp_path, spec)
    flash = cells["tongyi-embedding-vision-flash-768"]
    tokens = flash["estimated_tokens"]
    assert flash["region"] == "ap-southeast-1" and flash["estimated_cost"]["currency"] == "USD"
    # Singapore flash: text $0.09 (the higher of the disputed values), image $0.03 per 1M tokens
    assert flash["estimated_cost"]["amount"] == round((tokens["text"] * 0.09 + tokens["image"] * 0.03) / 1e6, 6)
    assert cells["local--e5-small-384"]["estimated_cost"] == {"amount": 0.0, "currency": None}
    proc = harness("plan", "spec.yaml", cwd=tmp_path, env={"COLUMNS": "200"})
    assert proc.returncode == 0 and "CNY" not in proc.stdout
    assert "USD" in proc.stdout and "not billed" in proc.stdout
    assert f"estimated cost {flash['estimated_cost']['amount']:.4f} USD." in proc.stdout
    # the same model in Beijing: CNY per 1,000 tokens
    beijing = plan_json(tmp_path, spec.replace("ap-southeast-1", "cn-beijing"))["tongyi-embedding-vision-flash-768"]
    assert beijing["estimated_cost"]["currency"] == "CNY"
    assert beijing["estimated_cost"]["amount"] == round(sum(beijing["estimated_tokens"][k] for k in ("text", "image"))
                                                       * 0.00015 / 1000, 6)


def test_qwen3_estimate_counts_its_template_and_the_instruct_text(tmp_path):
    """The reference's usage example: 43 input tokens for a text of about 20 characters."""
    cells = plan_json(tmp_path, """\
        version: 1
        name: tmpl
        models: [qwen3-vl-embedding, tongyi-embedding-vision-plus]
        dimensions: default
        inputs:
          - {id: a, text: "A cat on a red chair"}
        """)
    assert cells["qwen3-vl-embedding-2560"]["estimated_tokens"]["text"] == 43
    assert cells["tongyi-embedding-vision-plus-1152"]["estimated_tokens"]["text"] == 5     # no template there
    instruct = "Retrieve the photo the caption describes"       # 40 characters, 10 tokens, per vector
    cells = plan_json(tmp_path, f"""\
        version: 1
        name: tmpl
        models: [qwen3-vl-embedding, tongyi-embedding-vision-plus]
        dimensions: default
        parameters: {{instruct: "{instruct}"}}
        inputs:
          - {{id: a, text: "A cat on a red chair"}}
          - {{id: b, text: "A dog on a blue sofa"}}
        """)
    assert cells["qwen3-vl-embedding-2560"]["estimated_tokens"]["text"] == 2 * (5 + 38 + 10)
    # the undated tongyi models take instruct now (current API reference), and it is counted too
    assert cells["tongyi-embedding-vision-plus-1152"]["estimated_tokens"]["text"] == 2 * (5 + 10)
    assert cells["tongyi-embedding-vision-plus-1152"]["parameters"]["instruct"] == instruct


def test_a_video_costs_its_frames_at_the_res_level_tier(tmp_path):
    base = """\
        version: 1
        name: vid
        models: [tongyi-embedding-vision-plus-2026-03-06]
        dimensions: [1152]
        parameters: {%s}
        inputs:
          - {id: v, video: "https://example.com/clip.mp4"}
        """
    cid = "tongyi-embedding-vision-plus-2026-03-06-1152"
    assert plan_json(tmp_path, base % "")[cid]["estimated_tokens"]["video"] == 8 * 402  # defaults: 8 frames, tier 1
    assert plan_json(tmp_path, base % "res_level: 3")[cid]["estimated_tokens"]["video"] == 8 * 1026
    got = plan_json(tmp_path, base % "res_level: 0, max_video_frames: 16, fps: 0.5")[cid]["estimated_tokens"]["video"]
    assert got == 16 * 127                 # fps only lowers the count below the cap: the cap bounds the estimate


def test_after_execution_the_data_says_actual_or_estimated(tmp_path, server):
    server.reset()
    write_spec(tmp_path, """\
        version: 1
        name: spent
        models: [qwen3-vl-embedding, multimodal-embedding-v1]
        dimensions: default
        inputs:
          - {id: a, text: "A cat sitting on a red chair"}
          - {id: b, text: "A dog on a blue sofa"}
        """)
    proc = harness("run", "spec.yaml", "--execute", "--base-url", server.base_url, "--model", "qwen3-vl-embedding",
                   cwd=tmp_path, env={"DASHSCOPE_API_KEY": KEY, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folder = tmp_path / "output" / "spent"
    summary = json.loads((folder / "summary.json").read_text())
    [cell] = summary["cells"]
    execution = json.loads((folder / "execution.json").read_text())["cells"][0]
    reported = execution["usage"]["input_tokens"]            # qwen3: text (template included); no images here
    assert cell["spent"] == {"basis": "usage", "tokens": reported,
                             "cost": {"amount": round(reported * 0.0007 / 1000, 6), "currency": "CNY"}}
    assert cell["estimated_cost"]["currency"] == "CNY"        # the plan's figure stays, labelled an estimate
    assert f"{reported:,} actual" in proc.stdout and f"{reported * 0.0007 / 1000:.4f} CNY actual" in proc.stdout
    report = (folder / "report.md").read_text()
    assert "| est. cost |" in report and "CNY |" in report and "`spent`" in report
    # without a key nothing is sent: nothing spent, not an estimate presented as spending
    proc = harness("run", "spec.yaml", "--execute", "--base-url", server.base_url, "--output", "nokey", cwd=tmp_path)
    summary = json.loads((tmp_path / "nokey" / "spent" / "summary.json").read_text())
    assert {c["id"]: c["spent"] for c in summary["cells"]} == {"qwen3-vl-embedding-2560": None,
                                                               "multimodal-embedding-v1-1024": None}


def test_validate_txt_says_the_tongyi_dimension_dispute_both_ways(tmp_path):
    """Issue 15 item 3: the Chinese and English references disagree on whether the undated tongyi
    models take `dimension`; the run keeps the safe choice (never send it) and says so."""
    write_spec(tmp_path, """\
        version: 1
        name: dims
        models: [tongyi-embedding-vision-plus]
        parameters: {instruct: "Find the matching caption"}
        inputs:
          - {id: a, text: "A cat sitting on a red chair"}
        """)
    proc = harness("run", "spec.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    validate = (tmp_path / "output/dims/validate.txt").read_text()
    line = next(ln for ln in validate.splitlines()
                if ln.startswith("warn disputed-fact: tongyi-embedding-vision-plus dimensions"))
    assert "Chinese reference (ZH-NEW): no dimension parameter" in line and "English references" in line
    assert "Chosen: fixed 1152, dimension_param false: never send dimension" in line
    body = payload_json(tmp_path / "output/dims", "tongyi-embedding-vision-plus-1152", 1)
    assert body["parameters"] == {"instruct": "Find the matching caption"}        # no dimension sent


def test_reports_name_each_cells_currency_and_never_print_a_missing_one(tmp_path):
    write_spec(tmp_path, """\
        version: 1
        name: cur
        region: ap-southeast-1
        models:
          - tongyi-embedding-vision-plus
          - {name: local/e5-small, modalities: [text]}
        inputs:
          - {id: a, text: "A cat sitting on a red chair"}
        """)
    assert harness("run", "spec.yaml", cwd=tmp_path).returncode == 0
    folder = tmp_path / "output/cur"
    html, md = (folder / "report.html").read_text(), (folder / "report.md").read_text()
    # the HTML writes currencies as their signs ($ for USD, ¥ for CNY)
    assert "$0.0" in html and "not billed" in html and "None" not in html and "CNY" not in html and "¥" not in html
    assert " USD |" in md and "| not billed |" in md and "CNY" not in md


def test_totals_are_given_per_currency_never_summed_across():
    from harness.catalog.estimate import by_currency, money, money_totals
    costs = [{"amount": 0.5, "currency": "CNY"}, {"amount": 0.25, "currency": "USD"},
             {"amount": 0.125, "currency": "CNY"}, {"amount": 0.0, "currency": None}, None]
    assert by_currency(costs) == {"CNY": 0.625, "USD": 0.25}
    assert money_totals(costs) == "0.6250 CNY + 0.2500 USD"
    assert money_totals([{"amount": 0.0, "currency": None}]) == "nothing billed"
    assert money({"amount": 0.0, "currency": None}) == "not billed"
