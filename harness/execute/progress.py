"""The progress bar of an executing run: requests done/total, rate, ETA, retries and throttles.

Silent when `quiet` or when the console is not a terminal (CI logs, pipes, captured output stay
clean). It shows counts only: no URL, header or key ever reaches it.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.words import counted


class RunProgress:
    """`start(total)`, then `advance(cached=...)`, `retry(throttled=...)`, `failed()`; `stop()` at the end."""

    def __init__(self, console: Console | None = None, *, quiet: bool = False):
        self.console = console if console is not None else Console(stderr=True)
        self.enabled = not quiet and self.console.is_terminal
        self.done = self.cached = self.retries = self.throttled = self.failed_count = 0
        self._progress: Progress | None = None
        self._task: Any = None
        self._started = 0.0

    def start(self, total: int, description: str = "requests") -> None:
        if not self.enabled:
            return
        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[extra]}"),
            console=self.console, transient=False, refresh_per_second=4)
        self._task = self._progress.add_task(description, total=total, rate="", extra="")
        self._progress.start()

    def _refresh(self) -> None:
        if self._progress is None:
            return
        task = self._progress.tasks[0]
        speed = task.speed
        bits = []
        if self.cached:
            bits.append(f"{self.cached} cached")
        if self.retries:
            bits.append(counted(self.retries, "retry"))
        if self.throttled:
            bits.append(f"{self.throttled} throttled")
        if self.failed_count:
            bits.append(f"[red]{self.failed_count} failed[/red]")
        self._progress.update(self._task, rate=f"{speed:.1f}/s" if speed else "",
                              extra=" · ".join(bits))

    def advance(self, *, cached: bool = False, failed: bool = False) -> None:
        self.done += 1
        self.cached += cached
        self.failed_count += failed
        if self._progress is not None:
            self._progress.advance(self._task)
            self._refresh()

    def retry(self, *, throttled: bool = False) -> None:
        self.retries += 1
        self.throttled += throttled
        self._refresh()

    def stop(self) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()
            self._progress = None
