"""Models on the Hugging Face hub without a network (trmkit.checkpoint.hub; docs/training.md,
"Sharing a model on the Hub").

Download: a repository laid out exactly as ``huggingface_hub`` lays out its cache
(``models--OWNER--REPO/{blobs, refs/<rev>, snapshots/<sha>/<file> -> ../../blobs/<hash>}``)
under ``HF_HUB_CACHE``, read by the real ``snapshot_download`` with ``HF_HUB_OFFLINE`` set or
with the hub unreachable. Upload: ``huggingface_hub.HfApi`` replaced at the boundary by a
fake that records ``create_repo`` / ``create_branch`` / ``upload_folder`` and copies the
folder it is given; that folder, put into the fake cache, loads back as the bundle."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import types
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from tiny_training import build_tiny_data, one_thread, tiny_trainer

import trmkit
from trmkit import network
from trmkit.checkpoint import load_bundle, read_manifest
from trmkit.checkpoint.hub import (
    PUSH_REPLACES,
    bundle_files,
    model_card,
    parse_hub,
    push,
    run_evaluations,
)
from trmkit.cli import cli
from trmkit.errors import CheckpointError
from trmkit.models import count_parameters

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the project's tomli dependency below 3.11
    import tomli as tomllib

huggingface_hub = pytest.importorskip("huggingface_hub")

ROOT = Path(__file__).resolve().parents[1]
PUZZLE = "12..34....4.4..1"
"""a 4x4 sudoku, blanked from the valid grid 1234/3412/2143/4321."""
SHA_MAIN = "a" * 40
SHA_V1 = "b" * 40


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    before = one_thread()
    tmp = tmp_path_factory.mktemp("hub")
    data = build_tiny_data(tmp / "data")
    tiny_trainer(tmp, data).run()  # bundles and evaluations at steps 4 and 8, curves.png
    yield tmp / "run", data
    torch.set_num_threads(before)


def lay_out(cache: Path, repo: str, folder: Path, *, revision: str = "main", sha: str) -> Path:
    """``folder``'s files (nested ones too) as the hub cache holds repository ``repo`` at
    commit ``sha``, with ``refs/<revision>`` naming it; returns the snapshot folder."""
    storage = cache / f"models--{repo.replace('/', '--')}"
    snapshot = storage / "snapshots" / sha
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        rel = file.relative_to(folder)
        (snapshot / rel).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / rel).symlink_to(Path(*[".."] * (len(rel.parts) + 1), "blobs", blob.name))
    (storage / "refs").mkdir(exist_ok=True)
    (storage / "refs" / revision).write_text(sha)
    return snapshot


def loadable(bundle: Path, out: Path) -> Path:
    """A copy of the files of ``bundle`` a download holds (`bundle_files`)."""
    out.mkdir(parents=True)
    for file in bundle_files(bundle, read_manifest(bundle)):
        shutil.copyfile(file, out / file.name)
    return out


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty hub cache in tmp, offline mode on (the client reads only the cache)."""
    path = tmp_path / "hub-cache"
    path.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(path))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return path


class FakeApi:
    """`huggingface_hub.HfApi` at the boundary: records the calls, keeps a copy of each
    uploaded folder (the real one is a temporary directory gone after the push)."""

    def __init__(self, record: dict, token=None):
        self.record = record
        record["tokens"].append(token)

    def create_repo(self, repo_id, **kwargs):
        self.record["calls"].append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        self.record["calls"].append(("create_branch", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        if self.record.get("fail"):
            raise RuntimeError("401 Client Error: Unauthorized for url\nsecond line")
        copy = self.record["root"] / f"upload-{len(self.record['uploads'])}"
        shutil.copytree(kwargs["folder_path"], copy)
        self.record["uploads"].append(copy)
        self.record["calls"].append(("upload_folder", kwargs["repo_id"], kwargs))
        return types.SimpleNamespace(
            commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/{'c' * 40}"
        )


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """The fake hub API, reachable (the probe answers), not in offline mode."""
    record: dict = {"calls": [], "uploads": [], "tokens": [], "root": tmp_path}
    monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None: FakeApi(record, token))
    monkeypatch.setattr(network, "probe", lambda host, port, timeout=3.0: None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return record


def invoke(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, text: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines() == [f"Error: {text}"], result.output
    assert "Traceback" not in result.output


# --------------------------------------------------------------------------------- parsing


def test_hub_references_parse_and_bad_ones_are_one_line():
    ref = parse_hub("hf://me/trm-sudoku")
    assert (ref.repo, ref.revision, ref.path) == ("me/trm-sudoku", None, "")
    ref = parse_hub("hf://me/trm-sudoku@v1/runs/a")
    assert (ref.repo, ref.revision, ref.path) == ("me/trm-sudoku", "v1", "runs/a")
    for bad in ("hf://justowner", "hf:///x", "hf://me/tr m", "hf://me/x/../y"):
        with pytest.raises(CheckpointError) as err:
            parse_hub(bad)
        assert str(err.value) == (
            f"{bad}: not a hub repository; expected hf://OWNER/REPO[@REVISION][/PATH]"
        )
    with pytest.raises(CheckpointError, match=r"revision 'a\?b' is not a branch"):
        parse_hub("hf://me/x@a?b")


# -------------------------------------------------------------------------------- download


def test_round_trip_push_then_load_solves_as_the_local_bundle(run, hub, cache, monkeypatch):
    run_dir, _ = run
    monkeypatch.delenv("HF_HUB_OFFLINE")  # `hub` made the push reachable
    push(run_dir, "me/trm")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = lay_out(cache, "me/trm", hub["uploads"][0], sha=SHA_MAIN)
    remote, local = trmkit.load("hf://me/trm"), trmkit.load(run_dir)
    assert remote.path == snapshot and remote.manifest.step == local.manifest.step == 8
    assert remote.manifest.to_json() == local.manifest.to_json()
    for key, value in local.model.state_dict().items():
        assert torch.equal(remote.model.state_dict()[key], value), key
    options = dict(steps=5, samples=3, select="valid", seed=4)
    got, want = remote.solve(PUZZLE, **options), local.solve(PUZZLE, **options)
    assert np.array_equal(got[0].grid, want[0].grid)
    assert (got[0].confidence, got[0].steps, got[0].valid, got[0].correct) == (
        want[0].confidence,
        want[0].steps,
        want[0].valid,
        want[0].correct,
    )


def test_revision_selects_the_snapshot(run, cache, tmp_path):
    run_dir, _ = run
    lay_out(cache, "me/trm", loadable(run_dir / "checkpoints/step_8", tmp_path / "8"), sha=SHA_MAIN)
    v1 = loadable(run_dir / "checkpoints/step_4", tmp_path / "4")
    lay_out(cache, "me/trm", v1, revision="v1", sha=SHA_V1)
    assert trmkit.load("hf://me/trm").manifest.step == 8
    assert trmkit.load("hf://me/trm@main").manifest.step == 8
    assert trmkit.load("hf://me/trm@v1").manifest.step == 4
    assert trmkit.load(f"hf://me/trm@{SHA_V1}").manifest.step == 4  # a commit needs no ref
    assert load_bundle("hf://me/trm@v1").path.name == SHA_V1


def test_a_repository_holding_a_run_resolves_to_its_newest_bundle(run, cache, tmp_path):
    run_dir, _ = run
    folder = tmp_path / "repo"
    for step in (4, 8):
        loadable(run_dir / f"checkpoints/step_{step}", folder / f"step_{step}")
    lay_out(cache, "me/runs", folder, sha=SHA_MAIN)
    assert trmkit.load("hf://me/runs").manifest.step == 8
    assert trmkit.load("hf://me/runs/step_4").manifest.step == 4
    one_line_error(
        invoke("checkpoint", "info", "hf://me/runs/step_9"),
        "hf://me/runs/step_9: the repository has no 'step_9'; check the path",
    )


def test_every_checkpoint_command_takes_hf(run, cache, tmp_path):
    run_dir, data = run
    lay_out(cache, "me/trm", loadable(run_dir / "checkpoints/step_8", tmp_path / "8"), sha=SHA_MAIN)
    info = invoke("checkpoint", "info", "hf://me/trm", "--json")
    assert info.exit_code == 0, info.output
    described = json.loads(info.output)
    assert (described["step"], described["task"]) == (8, "sudoku-4x4")
    assert described["path"] == str(cache / "models--me--trm" / "snapshots" / SHA_MAIN)
    solved = invoke("solve", "hf://me/trm", PUZZLE, "--json")
    assert solved.exit_code == 0, solved.output
    local = invoke("solve", run_dir, PUZZLE, "--json")
    assert json.loads(solved.output) == json.loads(local.output)
    out = tmp_path / "ev"
    evaluated = invoke("eval", "hf://me/trm", "--data", data, "--out", out)
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads((out / "metrics.json").read_text())["count"] == 32
    exported = invoke("checkpoint", "export", "hf://me/trm", "--out", tmp_path / "official")
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "official" / "step_8").is_file()
    # adapt resolves its checkpoint the same way: the reference reaches the hub whole
    one_line_error(
        invoke("adapt", "hf://me/gone", "task.json", "--out", tmp_path / "adapted"),
        "hf://me/gone: not in the local hub cache and HF_HUB_OFFLINE is set; connect (unset "
        "HF_HUB_OFFLINE), or download the repository elsewhere and pass its folder",
    )


def test_offline_and_not_cached_is_one_line_at_once(cache, monkeypatch):
    expected = (
        "hf://someone/trm-sudoku: not in the local hub cache and HF_HUB_OFFLINE is set; "
        "connect (unset HF_HUB_OFFLINE), or download the repository elsewhere and pass its "
        "folder"
    )
    for args in (("eval",), ("solve",), ("checkpoint", "info")):
        tail = (PUZZLE,) if args == ("solve",) else ()
        one_line_error(invoke(*args, "hf://someone/trm-sudoku", *tail), expected)
    with pytest.raises(CheckpointError) as err:
        trmkit.load("hf://someone/trm-sudoku")
    assert str(err.value) == expected
    # not in offline mode, but the hub does not answer: the cache only, one line
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(network, "probe", lambda host, port, timeout=3.0: "Network is unreachable")
    one_line_error(
        invoke("eval", "hf://someone/trm-sudoku"),
        "hf://someone/trm-sudoku: not in the local hub cache and cannot reach huggingface.co "
        "(Network is unreachable): this machine looks offline; connect (unset HF_HUB_OFFLINE), "
        "or download the repository elsewhere and pass its folder",
    )


def test_unreachable_hub_loads_what_the_cache_holds(run, cache, tmp_path, monkeypatch):
    run_dir, _ = run
    lay_out(cache, "me/trm", loadable(run_dir / "checkpoints/step_8", tmp_path / "8"), sha=SHA_MAIN)
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(network, "probe", lambda host, port, timeout=3.0: "Network is unreachable")
    assert trmkit.load("hf://me/trm").manifest.step == 8


def test_cli_process_reads_the_cache_env_and_fails_offline_in_one_line(run, tmp_path):
    """A real `trmkit` process: HF_HUB_CACHE and HF_HUB_OFFLINE as a user sets them."""
    run_dir, _ = run
    cache = tmp_path / "cache"
    lay_out(cache, "me/trm", loadable(run_dir / "checkpoints/step_8", tmp_path / "8"), sha=SHA_MAIN)
    env = {
        **os.environ,
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")]),
    }
    cmd = [sys.executable, "-m", "trmkit.cli", "checkpoint", "info", "--json"]
    found = subprocess.run([*cmd, "hf://me/trm"], env=env, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["step"] == 8
    start = time.perf_counter()
    missing = subprocess.run([*cmd, "hf://me/nothing"], env=env, capture_output=True, text=True)
    assert time.perf_counter() - start < 30  # no retry loop (the process start is most of it)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [
        "Error: hf://me/nothing: not in the local hub cache and HF_HUB_OFFLINE is set; connect "
        "(unset HF_HUB_OFFLINE), or download the repository elsewhere and pass its folder"
    ]


# ---------------------------------------------------------------------------------- upload


def _tree(path: Path) -> dict[str, tuple[bytes, int]]:
    return {
        str(p.relative_to(path)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def test_push_of_a_run_uploads_its_newest_bundle_and_card(run, hub):
    run_dir, _ = run
    umask = os.umask(0o022)
    os.umask(umask)
    bundle = run_dir / "checkpoints" / "step_8"
    modes = {p.name: p.stat().st_mode & 0o777 for p in bundle.iterdir()}
    assert len(modes) == 7 and set(modes.values()) == {0o666 & ~umask}, modes  # resume state too
    before = _tree(run_dir)
    result = push(run_dir, "me/trm")
    assert _tree(run_dir) == before  # the bundle and the run are not touched
    assert result.bundle == bundle and result.revision is None
    assert result.url == f"https://huggingface.co/me/trm/commit/{'c' * 40}"
    names = ["README.md", "curves.png", "ema.safetensors", "manifest.json", "model.safetensors"]
    assert list(result.files) == names
    (folder,) = hub["uploads"]
    assert sorted(p.name for p in folder.iterdir()) == names
    for name in ("manifest.json", "model.safetensors", "ema.safetensors"):
        assert (folder / name).read_bytes() == (bundle / name).read_bytes()
    assert (folder / "curves.png").read_bytes() == (run_dir / "curves.png").read_bytes()
    loaded = trmkit.load(bundle)
    assert (folder / "README.md").read_text() == model_card(
        loaded.manifest,
        repo="me/trm",
        parameters=count_parameters(loaded.model),
        evaluations=run_evaluations(run_dir, 8),
        curves=True,
    )
    create, upload = hub["calls"]
    assert create == (
        "create_repo",
        "me/trm",
        {"private": False, "exist_ok": True, "repo_type": "model"},
    )
    kwargs = upload[2]
    assert (upload[1], kwargs["revision"]) == ("me/trm", None)
    assert kwargs["commit_message"] == "trmkit push: sudoku-4x4 trm step 8"
    assert kwargs["delete_patterns"] == list(PUSH_REPLACES)
    assert hub["tokens"] == [None]


def test_push_cli_of_a_bundle_to_a_branch(run, hub):
    run_dir, _ = run
    bundle = run_dir / "checkpoints" / "step_4"
    result = invoke(
        "push",
        bundle,
        "me/trm",
        "--branch",
        "v1",
        "--private",
        "--message",
        "first",
        "--token",
        "t",
    )
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"pushed {bundle} (README.md, curves.png, ema.safetensors, manifest.json, "
        f"model.safetensors) to https://huggingface.co/me/trm/commit/{'c' * 40}; load it with "
        "trmkit.load('hf://me/trm@v1') or trmkit solve hf://me/trm@v1 PUZZLE\n"
    )
    create, branch, upload = hub["calls"]
    assert create[2]["private"] is True
    assert branch == ("create_branch", "me/trm", {"branch": "v1", "exist_ok": True})
    assert (upload[2]["revision"], upload[2]["commit_message"]) == ("v1", "first")
    assert hub["tokens"] == ["t"]
    card = (hub["uploads"][0] / "README.md").read_text()
    assert "step 4 of its training" in card and "| `step_4` |" in card
    assert "| `step_8` |" not in card  # only the evaluations of the pushed step


def test_push_refusals_are_one_line_and_send_nothing(run, hub, monkeypatch, tmp_path):
    run_dir, _ = run
    one_line_error(
        invoke("push", run_dir, "justowner"),
        "hf://justowner: not a hub repository; expected hf://OWNER/REPO[@REVISION][/PATH]",
    )
    one_line_error(
        invoke("push", run_dir, "me/trm@v1"),
        "me/trm@v1: give the repository as OWNER/REPO and the branch with --revision",
    )
    one_line_error(
        invoke("push", "hf://me/other", "me/trm"),
        "hf://me/other: already on the hub; push a local run or bundle",
    )
    one_line_error(
        invoke("push", tmp_path / "none", "me/trm"),
        f"{tmp_path / 'none'}: no such checkpoint (give a step_<N> dir or a run dir)",
    )
    monkeypatch.setattr(network, "probe", lambda host, port, timeout=3.0: "Network is unreachable")
    one_line_error(
        invoke("push", run_dir, "me/trm"),
        "push to hf://me/trm: cannot reach huggingface.co (Network is unreachable): this "
        "machine looks offline; connect to upload (nothing was sent)",
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    one_line_error(
        invoke("push", run_dir, "me/trm"),
        "push to hf://me/trm: HF_HUB_OFFLINE is set; connect to upload (nothing was sent)",
    )
    assert hub["calls"] == [] and hub["uploads"] == []
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(network, "probe", lambda host, port, timeout=3.0: None)
    hub["fail"] = True
    one_line_error(
        invoke("push", run_dir, "me/trm"),
        "push to hf://me/trm: 401 Client Error: Unauthorized for url; check the repository "
        "name and the token (HF_TOKEN, --token or `hf auth login`; it needs write access)",
    )


# ------------------------------------------------------------------------------ model card


def test_model_card_says_what_the_model_is_how_well_it_does_and_how_to_load_it(run):
    run_dir, _ = run
    loaded = trmkit.load(run_dir)
    params = count_parameters(loaded.model)
    metrics = {
        "count": 500,
        "steps": 16,
        "halt": "converged:2",
        "samples": 4,
        "select": "valid",
        "noise": 0.0,
        "exact_accuracy": 0.9,
        "accuracy": 0.95,
    }
    card = model_card(
        loaded.manifest,
        repo="me/trm",
        parameters=params,
        evaluations=[("step_8-cli", metrics)],
        curves=True,
    )
    lines = card.splitlines()
    assert lines[:9] == [
        "---",
        "library_name: trmkit",
        "tags:",
        "- trmkit",
        "- recursive-reasoning",
        "- sudoku-4x4",
        "- trm",
        "---",
        "",
    ]
    assert "| task | `sudoku-4x4` (version 1) |" in lines
    assert "| architecture | `trm` |" in lines
    assert f"| trainable parameters | {params:,} |" in lines
    assert "| training step | 8 |" in lines
    # the Wilson 95% interval of 450 of 500 is [0.8706, 0.9233]
    assert (
        "| `step_8-cli` | 0.9000 | [0.8706, 0.9233] | 0.9500 | 500 | 16 | converged:2 | 4 "
        "| valid | 0.00 |"
    ) in lines
    assert "trmkit solve hf://me/trm puzzle.txt" in lines
    assert 'model = trmkit.load("hf://me/trm")   # or hf://me/trm@REVISION' in lines
    assert "![training curves](curves.png)" in lines
    toml = card.split("```toml\n")[1].split("\n```")[0]
    assert tomllib.loads(toml)["model"]["hidden_size"] == 32
    assert tomllib.loads(toml)["data"]["task"] == "sudoku-4x4"
    # the trainer's own evaluation of step 8, as the run recorded it
    (name, recorded), *more = run_evaluations(run_dir, 8)
    assert name == "step_8" and more == []
    assert recorded["count"] == 32 and recorded["halt"] == "fixed"
    # no run: the manifest's last evaluation; nothing recorded: said so; no curves
    bare = model_card(loaded.manifest, repo="me/trm", parameters=params)
    assert "| `last evaluation in training` | " in bare and "curves.png" not in bare
    empty = model_card(attrs.evolve(loaded.manifest, eval={}), repo="me/trm", parameters=params)
    assert "Not measured: the run recorded no evaluation of this step." in empty.splitlines()


def test_a_path_that_folded_hf_is_told_to_be_a_string(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as err:
        trmkit.load(Path("hf://me/trm"))
    assert str(err.value) == (
        "hf:/me/trm: no such checkpoint; pass a hub repository as the string 'hf://me/trm', "
        "not a Path"
    )


def test_eval_of_hf_writes_its_reports_outside_the_hub_cache(run, cache, tmp_path, monkeypatch):
    run_dir, data = run
    lay_out(cache, "me/trm", loadable(run_dir / "checkpoints/step_8", tmp_path / "8"), sha=SHA_MAIN)
    monkeypatch.chdir(tmp_path)
    for name in ("eval-me--trm@main-step_8", "eval-me--trm@main-step_8-2"):
        result = invoke("eval", "hf://me/trm@main", "--data", data)
        assert result.exit_code == 0, result.output
        assert (tmp_path / name / "metrics.json").is_file()
    assert not list(cache.rglob("metrics.json"))
