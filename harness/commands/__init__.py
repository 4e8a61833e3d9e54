"""Sub-commands, discovered by harness.cli: one module each."""
