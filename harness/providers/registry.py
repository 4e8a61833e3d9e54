"""Which class speaks which protocol. A new protocol is a new row."""

from __future__ import annotations

import importlib

PROTOCOLS: dict[str, str] = {
    "dashscope": "harness.providers.dashscope:DashScopeProvider",
    "openai": "harness.providers.openai_compat:OpenAIProvider",
    "local": "harness.providers.local:LocalProvider",
}


def provider_class(protocol: str):
    module, _, name = PROTOCOLS[protocol].partition(":")
    return getattr(importlib.import_module(module), name)
