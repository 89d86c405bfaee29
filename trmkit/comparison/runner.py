"""Runs a comparison's (variant, seed) runs: each a normal `trmkit train` run directory,
trained in its own process, J at a time, finished ones skipped and unfinished ones resumed.

A run is **finished** when its newest checkpoint is at the run's step budget
(``config.json`` ``total_steps``, or the step its time budget stopped it at) and
``metrics.jsonl`` holds the evaluation at that step;
it is **resumed** (``trmkit train --resume``) when it holds any complete checkpoint, and
started afresh otherwise. Each process gets ``cores // J`` threads (``OMP_NUM_THREADS`` and
``TRMKIT_NUM_THREADS``; the cores are the explicit thread setting of this process if any,
else its physical cores) and, where GPUs are visible, one of them (``CUDA_VISIBLE_DEVICES``,
round robin over the J slots).

Wall clock: the trainer logs no times (a resumed run's metrics.jsonl equals an uninterrupted
one's), so the runner stamps every ``eval @ step N`` line of the process's output with the
seconds since the process was launched and appends them to the run's
``seed-S.compare/compare-timing.jsonl``. A resumed attempt continues the clock from the time
recorded for its resume step (the time of a killed attempt past that step is not counted);
when the resume step fell between two evaluations the time there is estimated from the run's
rate and the run's times are marked estimated. Times include the process's start-up
(imports, opening the data, building the model, a few seconds) and the evaluations."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs

from trmkit.checkpoint.bundle import list_checkpoints
from trmkit.comparison.spec import CompareError
from trmkit.textio import read_json
from trmkit.threads import choose_threads
from trmkit.training.metrics_log import STOP_SPLIT, MetricsLog

TIMING_NAME = "compare-timing.jsonl"
LOG_NAME = "compare.log"
PID_NAME = ".compare-pid"
SWEEP_DIR = "compare-sweep"
EVAL_LINE = re.compile(r"eval @ step (\d+)")


@attrs.frozen
class Run:
    label: str
    seed: int
    run_dir: Path
    recipe_file: Path

    @property
    def name(self) -> str:
        return f"{self.label} seed {self.seed}"

    @property
    def side_dir(self) -> Path:
        """compare's own files of this run (log, timing, pid), beside the run directory:
        the run directory itself holds only what `trmkit train` writes, which refuses a
        fresh run into a directory that is not empty."""
        return self.run_dir.with_name(f"{self.run_dir.name}.compare")


def run_dir_of(out: Path, label: str, seed: int) -> Path:
    return out / label / f"seed-{seed}"


# ----------------------------------------------------------------------------- run state


def read_config(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "config.json"
    if not path.is_file():
        return None
    data = read_json(path, error=CompareError, what="run config")
    return data if isinstance(data, dict) else None


def eval_records(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluation lines of the run's metrics.jsonl, by step."""
    records = MetricsLog(run_dir / "metrics.jsonl").read()
    by_step = {int(r["step"]): r for r in records if r.get("split") == "eval"}
    return [by_step[s] for s in sorted(by_step)]


def end_step(run_dir: Path) -> int | None:
    """The step a run ends at: where its time budget (``train.max_minutes``) stopped it,
    else its step budget (``config.json`` ``total_steps``); None before it started."""
    records = MetricsLog(run_dir / "metrics.jsonl").read()
    stops = [int(r["step"]) for r in records if r.get("split") == STOP_SPLIT]
    if stops:
        return stops[-1]
    config = read_config(run_dir)
    total = config.get("total_steps") if config else None
    return total if isinstance(total, int) else None


def run_state(run_dir: Path) -> tuple[str, int]:
    """("finished" | "resume" | "fresh", the newest checkpoint's step or 0)."""
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        return "fresh", 0
    step = found[-1][0]
    end = end_step(run_dir)
    finished = end is not None and step >= end
    if finished and any(int(r["step"]) == end for r in eval_records(run_dir)):
        return "finished", step
    return "resume", step


def check_not_running(run: Run) -> None:
    """Refuse a run whose process (of an earlier compare that was killed) still trains."""
    path = run.side_dir / PID_NAME
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except (OSError, UnicodeDecodeError):
        return  # gone (or not Linux): a stale pid file
    if str(run.run_dir) in cmdline:
        raise CompareError(
            f"{run.run_dir}: still being trained by process {pid} (left by a compare that was "
            f"killed); wait for it to end or stop it with: kill {pid}"
        )


# ----------------------------------------------------------------------------- wall clock


def timeline(records: Iterable[Mapping[str, Any]]) -> tuple[dict[int, float], bool]:
    """Seconds of training at each evaluated step from a run's timing records, over its
    attempts, and whether any of them is estimated (see the module docstring)."""
    points: dict[int, float] = {}
    estimated = False
    base: float | None = 0.0
    start = 0
    for r in records:
        if "attempt" in r:
            start = int(r.get("from_step", 0))
            points = {s: t for s, t in points.items() if s <= start}
            last = max(points, default=0)
            if last == start:  # a fresh start, or a resume from an evaluated step
                base = points.get(start, 0.0)
            elif points:
                base = points[last] * start / last
                estimated = True
            else:
                base = None  # nothing timed before the resume step: use this attempt's rate
        elif "step" in r and "seconds" in r:
            step, seconds = int(r["step"]), float(r["seconds"])
            if base is None:
                base = seconds * start / max(step - start, 1)
                estimated = True
            points[step] = base + seconds
    return points, estimated


def read_timing(side_dir: Path) -> list[dict[str, Any]]:
    path = side_dir / TIMING_NAME
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            record = json.loads(line)
            if isinstance(record, dict):
                out.append(record)
    return out


# ----------------------------------------------------------------------------- processes


def visible_gpus() -> list[str]:
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except Exception:  # no usable CUDA: CPU runs
        return []


def child_env(threads: int, gpu: str | None) -> dict[str, str]:
    import trmkit

    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = env["TRMKIT_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    env["PYTHONUNBUFFERED"] = "1"
    root = str(Path(trmkit.__file__).resolve().parent.parent)
    parts = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    if root not in parts:
        env["PYTHONPATH"] = os.pathsep.join([root, *parts])
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


@attrs.define
class Outcome:
    run: Run
    ok: bool
    returncode: int
    last_line: str = ""


class Launcher:
    """Runs child processes J at a time, one slot (its GPU, or None) each; echoes their key
    lines."""

    def __init__(self, jobs: int, echo: Callable[[str], None]) -> None:
        self.jobs = jobs
        self.threads, gpus = max(1, choose_threads().threads // jobs), visible_gpus()
        self._free: queue.Queue[str | None] = queue.Queue()
        for i in range(jobs):
            self._free.put(gpus[i % len(gpus)] if gpus else None)
        self._echo = echo
        self._lock = threading.Lock()
        self._live: set[subprocess.Popen] = set()
        self.stopping = False
        """set once an interrupt stops every child: their exits are no failures to report."""

    def echo(self, line: str) -> None:
        with self._lock:
            self._echo(line)

    def run_process(
        self,
        run: Run,
        argv: Sequence[str],
        log_path: Path,
        on_line: Callable[[str, float], None] | None = None,
        pid_file: Path | None = None,
    ) -> Outcome:
        gpu = self._free.get()
        try:
            launched = time.monotonic()
            last = ""
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "a", encoding="utf-8", buffering=1) as log:  # line-buffered
                log.write(f"$ {' '.join(argv)}\n")
                proc = subprocess.Popen(
                    list(argv),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=child_env(self.threads, gpu),
                    text=True,
                    errors="replace",
                    bufsize=1,
                )
                with self._lock:
                    self._live.add(proc)
                if pid_file is not None:
                    pid_file.write_text(f"{proc.pid}\n")
                assert proc.stdout is not None
                for line in proc.stdout:
                    seconds = time.monotonic() - launched
                    log.write(line)
                    text = line.rstrip("\n")
                    last = text.strip() or last
                    if on_line is not None:
                        on_line(text, seconds)
                code = proc.wait()
                with self._lock:
                    self._live.discard(proc)
            if pid_file is not None:
                pid_file.unlink(missing_ok=True)
            return Outcome(run, code == 0, code, last)
        finally:
            self._free.put(gpu)

    def map(self, tasks: Sequence[Callable[[], Outcome]]) -> list[Outcome]:
        """Run ``tasks`` J at a time; on an interrupt every live child is stopped first."""
        pool = ThreadPoolExecutor(max_workers=self.jobs)
        futures = [pool.submit(task) for task in tasks]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            self.stop_all()
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def stop_all(self) -> None:
        self.stopping = True
        with self._lock:
            live = list(self._live)
        for proc in live:
            with contextlib.suppress(OSError):
                proc.terminate()
        for proc in live:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While running: SIGTERM to this process stops its children too (as Ctrl-C does)."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def train_task(
    launcher: Launcher, run: Run, data_dir: Path, budget_steps: int | None
) -> Callable[[], Outcome]:
    def task() -> Outcome:
        state, step = run_state(run.run_dir)
        run.side_dir.mkdir(parents=True, exist_ok=True)
        timing = run.side_dir / TIMING_NAME
        if state == "fresh":
            timing.unlink(missing_ok=True)
            launcher.echo(f"[{run.name}] training")
        else:
            launcher.echo(f"[{run.name}] resuming from step {step}")
        attempt = len([r for r in read_timing(run.side_dir) if "attempt" in r]) + 1
        with open(timing, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"attempt": attempt, "from_step": step, "at": time.time()}) + "\n")

        def on_line(text: str, seconds: float) -> None:
            match = EVAL_LINE.search(text)
            if match:
                with open(timing, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": int(match.group(1)), "seconds": seconds}) + "\n")
                launcher.echo(f"[{run.name}] {text.strip()}")

        argv = [sys.executable, "-m", "trmkit.cli", "train", "--recipe", str(run.recipe_file)]
        argv += ["--set", f"train.seed={run.seed}", "--data", str(data_dir)]
        argv += ["--out", str(run.run_dir), "--no-progress", "--no-preflight"]
        if budget_steps is not None:
            argv += ["--max-steps", str(budget_steps)]
        if state != "fresh":
            argv.append("--resume")
        outcome = launcher.run_process(
            run, argv, run.side_dir / LOG_NAME, on_line, pid_file=run.side_dir / PID_NAME
        )
        if outcome.ok:
            launcher.echo(f"[{run.name}] finished")
        elif launcher.stopping:
            launcher.echo(f"[{run.name}] stopped (resumable: rerun the same command)")
        else:
            launcher.echo(f"[{run.name}] failed (exit {outcome.returncode}): {outcome.last_line}")
        return outcome

    return task


def sweep_task(launcher: Launcher, run: Run, sweep_samples: str | None) -> Callable[[], Outcome]:
    def task() -> Outcome:
        launcher.echo(f"[{run.name}] test-time sweep")
        argv = [sys.executable, "-m", "trmkit.cli", "eval", str(run.run_dir), "--sweep"]
        argv += ["--out", str(run.run_dir / "eval" / SWEEP_DIR)]
        if sweep_samples:
            argv += ["--sweep-samples", sweep_samples]
        outcome = launcher.run_process(run, argv, run.side_dir / LOG_NAME)
        if not outcome.ok:
            launcher.echo(f"[{run.name}] sweep failed (exit {outcome.returncode})")
        return outcome

    return task


def sweep_done(run: Run) -> bool:
    return (run.run_dir / "eval" / SWEEP_DIR / "sweep.json").is_file()


def raise_failures(outcomes: Sequence[Outcome], what: str) -> None:
    failed = [o for o in outcomes if not o.ok]
    if failed:
        first = failed[0]
        raise CompareError(
            f"{first.run.run_dir}: {what} of {len(failed)} run(s) failed, first {first.run.name} "
            f"(exit {first.returncode}: {first.last_line[:200]}); its output is in "
            f"{first.run.side_dir / LOG_NAME}; fix the cause and rerun the same command to resume"
        )


__all__ = [
    "LOG_NAME",
    "SWEEP_DIR",
    "TIMING_NAME",
    "Launcher",
    "Outcome",
    "Run",
    "check_not_running",
    "eval_records",
    "raise_failures",
    "read_config",
    "read_timing",
    "run_dir_of",
    "run_state",
    "sigterm_as_interrupt",
    "sweep_done",
    "sweep_task",
    "timeline",
    "train_task",
    "visible_gpus",
]
