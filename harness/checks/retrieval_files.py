"""The files a retrieval check over qrels gives the run folder, in the formats the tools users already run
read: the cell's scores as an MTEB result (`results/<model>/dim-<dimension>/<check>.json` and the
`model_meta.json` beside it, MTEB's layout, which `mteb.ResultCache(cache_path=<run folder>)` loads), the
ranking as a TREC run file and the judgements in the run file's ids (`runs/<cell>/<check>.trec` and
`.qrels`, which trec_eval and pytrec_eval re-score to the check's metrics). A folder of evidence format 1
or 2 gets the files that format wrote (`results/<cell>/<check>.json`, no qrels file), so `verify` derives
them again byte for byte.
"""

from __future__ import annotations

from typing import Callable

from harness.checks import metrics as M
from harness.checks.context import Ctx, json_number
from harness.evidence import canonical_json
from harness.folder import layout
from harness.inputs.datasets import Judgements

MTEB_VERSION = "2.26.24"   # the MTEB release whose result format (TaskResult, ResultCache's layout) is written
QRELS_FILES_FROM = 3       # the evidence format from which the qrels file and MTEB's layout are written

Files = dict[str, tuple[str, bytes]]    # what ("results", "model_meta", "run", "qrels") → (relative path, bytes)


def retrieval_files(judged: Judgements, ctx: Ctx, means: dict[str, float], queries: dict[str, dict[str, int]],
                    candidates: int, depth: int, run_lines: list[str], run_id: Callable[[str], str],
                    revision: tuple[str, list[dict]] | None, ignore_identical_ids: bool = True,
                    sureness: dict | None = None) -> Files:
    """The check's files for this cell. `queries`: the evaluated queries' judgements (input ids);
    `run_id(input id)`: the id the run file gives it; `revision`: the data set's digest and files
    (`Judgements.revision`), None in a folder of evidence format 1 or 2; `sureness`: the metrics'
    `intervals` and their `confidence`, `resamples` and `seed`, which the result's `harness` part records."""
    cid, name = ctx.cell["id"], ctx.name
    run = ("\n".join(run_lines) + "\n").encode("utf-8")
    if ctx.format < QRELS_FILES_FROM or revision is None:
        return {"run": (layout.check_run_file(cid, name), run),
                "results": (layout.check_results_file(cid, name),
                            _result_v2(judged, ctx, means, len(queries), candidates, depth))}
    qrels = "".join(f"{run_id(q)} 0 {run_id(d)} {g}\n" for q, docs in queries.items() for d, g in docs.items())
    model, dimension = mteb_model_name(ctx.cell), ctx.cell.get("dimension")
    facts = {"check": name, "cell": cid, "model": ctx.cell.get("model"), "dimension": dimension,
             "queries": len(queries), "candidates": candidates, "depth": depth, "qrels": judged.source,
             "ignore_identical_ids": ignore_identical_ids, "dataset": judged.task, "dataset_files": revision[1],
             "run_file": layout.check_run_file(cid, name), "qrels_file": layout.check_qrels_file(cid, name),
             **judged.extra, **(sureness or {})}
    return {"run": (layout.check_run_file(cid, name), run),
            "qrels": (layout.check_qrels_file(cid, name), qrels.encode("utf-8")),
            "results": (layout.mteb_result_file(model, dimension, name),
                        mteb_result(judged, ctx, means, revision[0], facts)),
            "model_meta": (layout.mteb_model_meta(model, dimension), model_meta(ctx.cell))}


def mteb_model_name(cell: dict) -> str:
    """The cell's model as MTEB names a model, `organization/model`: the harness's name when it has a `/`
    (`local/e5-small`), else the provider before it (`dashscope/qwen3-vl-embedding`)."""
    model = str(cell.get("model"))
    return model if "/" in model else f"{cell.get('provider') or 'harness'}/{model}"


def _scores(means: dict[str, float]) -> dict[str, float]:
    return {M.mteb_name(m): json_number(v) for m, v in means.items() if "@" in m}


def mteb_result(judged: Judgements, ctx: Ctx, means: dict[str, float], revision: str, facts: dict) -> bytes:
    """The cell's scores as an MTEB TaskResult: `task_name` the check's name, one split (the data set's,
    else `test`) with one subset `default` in the data set's `languages`, metrics named as MTEB names them
    (`ndcg_at_10`...), `main_score` nDCG@10 as MTEB's retrieval tasks; `dataset_revision` the data set's
    digest, `evaluation_time` the cell's elapsed seconds (execution.json's `elapsed_s`, first request to
    last answer, every input of the cell), `mteb_version` the format followed. What MTEB records that a
    run does not know (date, CO2) stays null; `harness` says what the numbers rest on."""
    from harness.inputs.datasets.beir import DEFAULT_LANGUAGES

    scores = _scores(means)
    row = {"hf_subset": "default", "languages": list(judged.languages or DEFAULT_LANGUAGES),
           "main_score": scores["ndcg_at_10"], **dict(sorted(scores.items()))}
    elapsed = getattr(ctx.info, "elapsed_s", None) if ctx.info is not None else None
    doc = {"dataset_revision": revision, "task_name": ctx.name, "mteb_version": MTEB_VERSION,
           "scores": {judged.split or "test": [row]},
           "evaluation_time": float(elapsed) if isinstance(elapsed, (int, float)) else None,
           "kg_co2_emissions": None, "date": None, "evaluation_phases": None, "harness": facts}
    return canonical_json(doc, pretty=True)


def model_meta(cell: dict) -> bytes:
    """The cell's model as MTEB's ModelMeta (`model_meta.json`): its name (`mteb_model_name`), the revision
    its results are filed under (`dim-<dimension>`), the dimension, cosine similarity, the modalities the
    cell embedded (not all the model takes); what the harness does not know
    about the model (parameters, license, training data...) is null."""
    provider = cell.get("provider")
    meta = {"loader": None, "loader_kwargs": {}, "name": mteb_model_name(cell),
            "revision": layout.mteb_revision(cell.get("dimension")), "release_date": None, "languages": None,
            "n_parameters": None, "n_active_parameters_override": None, "n_embedding_parameters": None,
            "memory_usage_mb": None, "max_tokens": None, "embed_dim": cell.get("dimension"), "license": None,
            "open_weights": None, "public_training_code": None, "public_training_data": None,
            "framework": ["API"] if provider in ("dashscope", "openai") else [], "reference": None,
            "similarity_fn_name": "cosine", "use_instructions": None, "training_datasets": None,
            "adapted_from": None, "superseded_by": None,
            "modalities": _modalities(cell),
            "model_type": ["dense"], "citation": None, "contacts": None, "experiment_kwargs": None,
            "output_dtypes": None, "extra_requirements_groups": None}
    return canonical_json(meta, pretty=True)


def _modalities(cell: dict) -> list[str]:
    """The modalities of the inputs the cell embedded (the manifest's `modality_mix`), in MTEB's words."""
    mix = cell.get("modality_mix") or {}
    kinds = {"multi_images": "image", "fused": None}
    found = {kinds.get(m, m) for m, n in mix.items() if n} & {"text", "image", "video"}
    if "fused" in mix:
        found |= {"text", "image"}
    return sorted(found) or ["text"]


def _result_v2(judged: Judgements, ctx: Ctx, means: dict[str, float], queries: int, candidates: int,
               depth: int) -> bytes:
    """The result file of evidence formats 1 and 2 (results/<cell>/<check>.json): MTEB's fields with
    what MTEB records about its own run null and no languages."""
    scores = _scores(means)
    row = {"hf_subset": "default", "languages": [], "main_score": scores["ndcg_at_10"], **dict(sorted(scores.items()))}
    doc = {"dataset_revision": None, "evaluation_time": None, "kg_co2_emissions": None, "mteb_version": None,
           "task_name": judged.task or ctx.name, "scores": {judged.split or "test": [row]},
           "harness": {"check": ctx.name, "cell": ctx.cell["id"], "model": ctx.cell.get("model"),
                       "dimension": ctx.cell.get("dimension"), "queries": queries, "candidates": candidates,
                       "depth": depth, "qrels": judged.source, **judged.extra}}
    return canonical_json(doc, pretty=True)
