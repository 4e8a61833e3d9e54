"""spec: see docs/architecture.md."""
