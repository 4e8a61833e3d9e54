"""The output folder's one owner: its layout, typed records, one reader, one writer.

Execute, checks, reports, verify, diff and export read and write a run through this package;
the contract itself is documented in docs/architecture.md ("The output folder").
"""

from harness.folder import layout
from harness.folder.reader import NotARun, Run, RunReader, open_run
from harness.folder.records import (
    EVIDENCE_FORMAT,
    EXECUTION_VERSION,
    MANIFEST_VERSION,
    CellEntry,
    CellExecution,
    CellVectors,
    Execution,
    FolderError,
    Manifest,
    Reason,
)
from harness.folder.summary import SUMMARY_VERSION, Quality, Summary, SummaryCell, SummaryCheck
from harness.folder.writer import RunWriter

__all__ = ["EVIDENCE_FORMAT", "EXECUTION_VERSION", "MANIFEST_VERSION", "SUMMARY_VERSION", "CellEntry",
           "CellExecution", "CellVectors", "Execution", "FolderError", "Manifest", "NotARun", "Quality", "Reason",
           "Run", "RunReader", "RunWriter", "Summary", "SummaryCell", "SummaryCheck", "layout", "open_run"]
