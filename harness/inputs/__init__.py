"""inputs: see docs/architecture.md."""
