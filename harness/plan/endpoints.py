"""Where a cell's requests go, and which hosts may receive a credential.

A URL the spec chooses (a model's `base_url`, the spec's `endpoint:`, an export's `to`) may
receive a credential only on an allowed host (`AllowedHosts`: the official ones, `--base-url`,
the environment's and `--allow-host`); in CI mode it may receive the inputs only there or on
loopback, key or not (`AllowedHosts.admits_data`). A base URL the spec chooses carries no
credential of its own (no user:pass@, query or fragment). Each refusal is reported at the spec
line that chose it.
"""

from __future__ import annotations

import os

from harness.catalog.load import Catalog, ModelInfo
from harness.errors import Problem
from harness.providers.credentials import BASE_URL_ENV, BASE_URL_HINT, AllowedHosts, check_base_url
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
        listed = isinstance(entry.get("base_url"), list)
        for i, base in bases:   # the key (or, in CI mode, the data) goes to every replica: each must be allowed
            at = where + ("base_url", i) if listed else where + ("base_url",)
            _refuse_credentials_in(base, f"the base_url of {model.name}", at, spec, problems)
            if entry.get("api_key_env"):
                _refuse_unless_allowed(base, f"${entry['api_key_env']} (the api_key_env of {model.name})",
                                       at, spec, allowed, problems)
            else:   # no key, nothing to leak: a self-hosted server may be anywhere, save in CI mode
                _refuse_unless_sendable(base, f"the inputs of {model.name}", at, spec, allowed, problems)
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
        at = where + ("base_url",) if entry.get("base_url") else ("endpoint",)
        if base:
            _refuse_credentials_in(base, f"the {'base_url' if entry.get('base_url') else 'endpoint'}", at, spec,
                                   problems)
            _refuse_unless_allowed(base, "the DashScope API key", at, spec, allowed, problems)
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


def _refuse_unless_sendable(url: str, what: str, path: tuple, spec: Spec, allowed: AllowedHosts | None,
                            problems: list[Problem]) -> None:
    if allowed is not None and not allowed.admits_data(url):
        problems.append(spec.problem(path, *allowed.data_refusal(what, url)))


def _refuse_credentials_in(url: str, what: str, path: tuple, spec: Spec, problems: list[Problem]) -> None:
    """A spec's base URL holding a user name, a password, a query or a fragment: refused, unechoed."""
    message = check_base_url(url, what)
    if message:
        problem = spec.problem(path, message, BASE_URL_HINT)
        if problem not in problems:   # one spec `endpoint:` serves every DashScope model
            problems.append(problem)


def check_export_host(spec: Spec, allowed: AllowedHosts | None, problems: list[Problem]) -> None:
    """`export:` with a token_env sends that variable to the Milvus server at `to`: the same rule;
    without one, in CI mode, what the export stores (vectors, input ids) goes only to an allowed host."""
    export = spec.data.get("export")
    if not isinstance(export, dict) or not isinstance(export.get("to"), str) or "://" not in export["to"]:
        return
    if export.get("token_env"):
        _refuse_unless_allowed(export["to"], f"${export['token_env']} (the export's token_env)",
                               ("export", "to"), spec, allowed, problems)
    else:
        _refuse_unless_sendable(export["to"], "the run's vectors and input ids", ("export", "to"), spec, allowed,
                                problems)
