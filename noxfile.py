"""nox sessions: tests, slow, lint, typecheck, bench, gpu_check. `nox -l` lists them."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"

# The CPU wheel on this machine; an unpinned torch may pull a multi-GB CUDA build.
TORCH = "torch==2.13.0"


def _install(session: nox.Session, extras: str = "test") -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


@nox.session
def tests(session: nox.Session) -> None:
    """The default test suite (slow tests excluded)."""
    _install(session)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def slow(session: nox.Session) -> None:
    """Only the tests marked slow (longer training runs, multi-process)."""
    _install(session)
    session.run("python", "-m", "pytest", "-m", "slow", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format check."""
    session.install("ruff>=0.6")
    paths = ("trmkit", "plugins", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "check", *paths)
    session.run("ruff", "format", "--check", *paths)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy on the trmkit package."""
    _install(session, "dev")
    session.run("mypy", "trmkit")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: loader, dataset builds, engine step, trainer overhead."""
    _install(session, "test,arc")
    for script in (
        "benchmarks/bench_loader.py",
        "benchmarks/bench_build_sudoku.py",
        "benchmarks/bench_build_arc.py",
        "benchmarks/bench_engine.py",
        "benchmarks/bench_trainer.py",
    ):
        session.run("python", script, *session.posargs)


@nox.session(venv_params=["--system-site-packages"])
def gpu_check(session: nox.Session) -> None:
    """The prepared GPU check (docs/engine.md, "The prepared GPU check"): the paper Sudoku
    and ARC recipes with bf16 and torch.compile on CUDA, its JSON summary in gpu.json; tiny
    on a machine without CUDA. The machine's own torch (its CUDA build) is used, not the pin."""
    session.install("-e", ".[arc]")
    session.run("python", "benchmarks/gpu_check.py", "--out", "gpu.json", *session.posargs)
