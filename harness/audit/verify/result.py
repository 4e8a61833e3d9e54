"""What the check layers find: one `Finding` per difference, collected in a `VerifyReport`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What `--hashes-only` leaves out, said in its output (and docs/audit.md, "Audit: what each layer proves").
NOT_CHECKED_BY_HASHES = (
    "that the payloads, index files and inputs.jsonl follow from the spec and the local inputs (not re-derived)",
    "that the local inputs and the original spec are unchanged since the run",
    "that validate.txt follows from the vectors (the checks were not re-evaluated)",
    "that the reports agree with validate.txt and the manifest (not re-rendered)",
)

# Finding kinds, in the order a report lists them.
KINDS = ("manifest", "missing", "extra", "changed", "spec", "input", "payload", "cells", "execution", "verdict",
         "reports", "signature", "attestation", "reexecute", "not-reexecuted", "not-derived")


@dataclass(frozen=True)
class Finding:
    kind: str          # one of KINDS
    path: str          # the file (relative to the folder, or as recorded) the finding is about
    message: str
    mismatch: bool = True  # False: could not be checked here (not a difference)
    cell: str | None = None   # the cell it is about, when it is about one (read as data, never from `path`)

    def line(self) -> str:
        return f"{self.kind:<11} {self.path}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "path": self.path, "message": self.message, "mismatch": self.mismatch}


@dataclass
class VerifyReport:
    folder: Path
    findings: list[Finding] = field(default_factory=list)
    hashed: int = 0           # files whose sha256 matched the manifest
    derived: int = 0          # files re-derived byte for byte
    rechecked: int = 0        # validate.txt lines the checks give again from the vectors
    reworded: list[str] = field(default_factory=list)   # of those, lines of an earlier format whose words differ
    inputs_checked: int = 0   # local input files whose sha256 matched
    spec_source: str | None = None  # where the original spec was found, if it was
    notes: list[str] = field(default_factory=list)
    strict: bool = False
    proved: list[str] = field(default_factory=list)   # what the signature and re-execution established
    hashes_only: bool = False   # `--hashes-only`: nothing was re-derived, re-evaluated or re-rendered
    sections: dict[str, Any] = field(default_factory=dict)   # their details, for --json

    @property
    def ok(self) -> bool:
        return not any(f.mismatch or self.strict for f in self.findings)

    def add(self, kind: str, path: str, message: str, mismatch: bool = True, cell: str | None = None) -> None:
        self.findings.append(Finding(kind, path, message, mismatch, cell))

    def failing(self) -> list[Finding]:
        """The findings that fail the verification (under `strict`, every one)."""
        return [f for f in self.findings if f.mismatch or self.strict]

    def sorted_findings(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: (KINDS.index(f.kind), f.path))

    def as_dict(self) -> dict[str, Any]:
        extra = {"hashes_only": True, "not_checked": list(NOT_CHECKED_BY_HASHES)} if self.hashes_only else {}
        return {"folder": str(self.folder), "verified": self.ok, "hashed": self.hashed, "derived": self.derived,
                "inputs_checked": self.inputs_checked, "rechecked": self.rechecked, "spec_source": self.spec_source,
                "notes": self.notes, "proved": self.proved, **extra, **self.sections,
                "findings": [f.as_dict() for f in self.sorted_findings()]}


def short(digest: str | None) -> str:
    """A sha256 as messages show it."""
    return (digest or "none")[:12]
