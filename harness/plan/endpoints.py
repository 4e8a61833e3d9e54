"""Where a cell's requests go, and which hosts may receive a credential.

A URL the spec chooses (a model's `base_url`, the spec's `endpoint:`, an export's `to`) may
receive a credential only on an allowed host (`AllowedHosts`: the official ones, `--base-url`,
the environment's and `--allow-host`); each refusal is reported at the spec line that chose it.
"""

from __future__ import annotations

import os

from harness.catalog.load import Catalog, ModelInfo
from harness.errors import Problem
from harness.providers.credentials import BASE_URL_ENV, AllowedHosts
from harness.spec.load import Spec


def cell_endpoint(model: ModelInfo, entry: dict, where: tuple, spec: Spec, catalog: Catalog, base_url: str | None,
                  problems: list[Problem], allowed: AllowedHosts | None = None,
                  endpoints: dict[str, str] | None = None) -> str:
    """The URL a cell's requests go to. A URL the spec chose may receive a credential (the DashScope
    key, or the variable an openai/* model names in api_key_env) only on an allowed host."""
    if model.provider == "local":
        return f"local://{model.wire_model}"
    if model.provider == "openai":
        bases = _base_urls(entry)
        if not bases:
            problems.append(spec.problem(where, f"{model.name} needs a base_url (the OpenAI-compatible server)",
                                         "e.g. - {name: %s, base_url: http://127.0.0.1:8000/v1}" % model.name,
                                         prefer_key=True))
            return ""
        if entry.get("api_key_env"):   # no key, nothing to leak: a self-hosted server may be anywhere
            listed = isinstance(entry.get("base_url"), list)
            for i, base in bases:   # the key goes to every replica: each must be allowed
                _refuse_unless_allowed(base, f"${entry['api_key_env']} (the api_key_env of {model.name})",
                                       where + ("base_url", i) if listed else where + ("base_url",),
                                       spec, allowed, problems)
        return bases[0][1].rstrip("/") + "/embeddings"
    if endpoints and endpoints.get(model.name):
        return endpoints[model.name]  # re-planning a run (verify): where it was actually sent
    region = spec.data.get("region", "cn-beijing")
    if isinstance(entry.get("base_url"), list):
        problems.append(spec.problem(where + ("base_url",), f"{model.name} is a DashScope model: its base_url "
                                     "is one URL (a list of replicas is for openai/* models)",
                                     "give one URL, or leave base_url out to use the region's"))
        return ""
    base = base_url
    if not base:   # --base-url is the user's own choice; what the spec names must be allowed
        base = entry.get("base_url") or spec.data.get("endpoint")
        if base:
            _refuse_unless_allowed(base, "the DashScope API key",
                                   where + ("base_url",) if entry.get("base_url") else ("endpoint",),
                                   spec, allowed, problems)
    base = base or os.environ.get(BASE_URL_ENV)
    if not base:
        if model.regions and region not in model.regions:
            problems.append(spec.problem(("region",) if "region" in spec.data else where,
                                         f"{model.name} is not offered in {region} "
                                         f"(only in: {', '.join(model.regions)})",
                                         "change `region:`, or exclude the model"))
        base = catalog.regions[region]
    return base.rstrip("/") + catalog.embedding_path


def _base_urls(entry: dict) -> list[tuple[int, str]]:
    """(position, URL) of an openai/* model's base_url: one string, or a list of replicas (entries
    the schema refused are None here and left out)."""
    given = entry.get("base_url")
    listed = given if isinstance(given, list) else [given]
    return [(i, b) for i, b in enumerate(listed) if isinstance(b, str) and b]


def replica_endpoints(model: ModelInfo, entry: dict) -> tuple[str, ...]:
    """Every replica's endpoint when an openai/* model lists more than one base URL, else ()."""
    if model.provider != "openai" or not isinstance(entry.get("base_url"), list):
        return ()
    ends = tuple(dict.fromkeys(b.rstrip("/") + "/embeddings" for _, b in _base_urls(entry)))
    return ends if len(ends) > 1 else ()


def _refuse_unless_allowed(url: str, what: str, path: tuple, spec: Spec, allowed: AllowedHosts | None,
                           problems: list[Problem]) -> None:
    if allowed is not None and not allowed.admits(url):
        problem = spec.problem(path, *allowed.refusal(what, url))
        if problem not in problems:   # one spec `endpoint:` serves every DashScope model
            problems.append(problem)


def check_export_host(spec: Spec, allowed: AllowedHosts | None, problems: list[Problem]) -> None:
    """`export:` with a token_env sends that variable to the Milvus server at `to`: the same rule."""
    export = spec.data.get("export")
    if isinstance(export, dict) and export.get("token_env") and isinstance(export.get("to"), str) \
            and "://" in export["to"]:
        _refuse_unless_allowed(export["to"], f"${export['token_env']} (the export's token_env)",
                               ("export", "to"), spec, allowed, problems)
