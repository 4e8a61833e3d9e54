"""Reproducibility harness for DashScope (Model Studio) multimodal embeddings."""

__version__ = "0.1.0"
