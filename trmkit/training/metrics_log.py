"""A run's metrics.jsonl: one JSON object per line, appended to, rewritten atomically.

``{"step": N, "split": "train"|"eval", "<metric>": value, ...}`` per line, and
``{"step": N, "split": "stop", "minutes": M}`` when ``train.max_minutes`` ended the run at
step N (`STOP_SPLIT`). A resumed run
first drops the records past its resume step (`truncate_after`) by writing the kept lines to
a temporary file and renaming it over the log (`trmkit.atomic`), so a kill during the
rewrite leaves the old log or the new one, never a half-written one. A kill during an
append can leave a torn last line; reading and truncating drop it with one warning on
stderr instead of failing the resume.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from trmkit import atomic
from trmkit.textio import MAX_TEXT_BYTES, read_text

STOP_SPLIT = "stop"
"""the record of a run the time budget ended before its step budget."""


class MetricsLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _records(self) -> list[tuple[str, dict[str, Any]]]:
        """(line, record) pairs of the parseable lines; a torn last line (no newline and not
        JSON) and malformed lines are dropped, with a warning on stderr."""
        if not self.path.exists():
            return []
        lines = read_text(self.path, max_bytes=MAX_TEXT_BYTES, what="metrics log").split("\n")
        out: list[tuple[str, dict[str, Any]]] = []
        bad, torn = 0, False
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                record = None
            step = record.get("step", 0) if isinstance(record, dict) else None
            if isinstance(step, int) and not isinstance(step, bool):  # a JSON integer
                out.append((line, record))
            elif i == len(lines) - 1:
                torn = True
            else:
                bad += 1
        if torn:
            sys.stderr.write(
                f"warning: {self.path}: dropped a torn last line (a run killed "
                "while appending to it)\n"
            )
        if bad:
            sys.stderr.write(f"warning: {self.path}: dropped {bad} malformed line(s)\n")
        return out

    def truncate_after(self, step: int) -> None:
        """Drop records past ``step`` (they belong to a run that was resumed from ``step``),
        and a torn last line; the rewrite is atomic."""
        if not self.path.exists():
            return
        kept = [line for line, record in self._records() if record.get("step", 0) <= step]
        atomic.write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, record: Mapping[str, Any]) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({k: _plain(v) for k, v in record.items()}) + "\n")
        except OSError as exc:  # a full disk fails at the flush, where Python names no file
            exc.filename = exc.filename or os.fspath(self.path)
            raise

    def read(self) -> list[dict[str, Any]]:
        return [record for _, record in self._records()]


class RunLog(MetricsLog):
    """A training run's metrics.jsonl and its trackers (Accelerate's ``log_with``): the main
    process writes both, the other processes nothing."""

    def __init__(self, path: Path, accelerator: Any) -> None:
        super().__init__(path)
        self.accelerator = accelerator

    def record(self, step: int, split: str, values: Mapping[str, Any], track: bool = True) -> None:
        """The line ``{"step", "split", **values}``; with ``track``, the numbers go to the
        trackers too, each as ``<split>/<name>``."""
        if not self.accelerator.is_main_process:
            return
        self.write({"step": step, "split": split, **values})
        if track:
            numbers = {f"{split}/{k}": v for k, v in values.items() if isinstance(v, (int, float))}
            self.accelerator.log(numbers, step=step)


def _plain(value: Any) -> Any:
    """A tensor or numpy scalar as a Python number, a non-finite float as None (JSON null)."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and not math.isfinite(value) else value


class TrainWindow:
    """The metric sums of the training steps since the last train record (float64, on the
    device: no host sync per step)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0

    def add(self, metrics: Mapping[str, torch.Tensor]) -> None:
        for k, v in metrics.items():
            v = v.detach().to(torch.float64)
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.steps += 1

    def close(
        self, global_batch: int, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> dict[str, float]:
        """The window's averages (``reduce`` sums it over the processes first): ``count`` per
        step, ``*loss`` per sequence of the global batch, the rest per counted (halted)
        sequence. The window then starts empty; {} for a window without metrics."""
        keys, steps = sorted(self.sums), self.steps
        stacked = torch.stack([self.sums[k] for k in keys]) if keys else None
        self.sums, self.steps = {}, 0
        if stacked is None:
            return {}
        if reduce is not None:
            stacked = reduce(stacked)
        sums = dict(zip(keys, stacked.tolist(), strict=True))
        count = max(sums.get("count", 0.0), 1.0)
        per = {"count": steps}
        return {
            k: v / per.get(k, global_batch * steps if k.endswith("loss") else count)
            for k, v in sums.items()
        }


__all__ = ["MetricsLog", "RunLog", "TrainWindow"]
