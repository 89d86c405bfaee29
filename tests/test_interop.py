"""`trmkit checkpoint import / export / info` on checkpoints written by the official code.

`shared/data/official-checkpoints` holds runs of the official `pretrain.py` (TRM attention,
TRM MLP-t, HRM, a compiled TRM) and, for each, `expected.npz`: the official model's outputs
at every ACT step on 8 test examples. Importing a run and rolling trmkit's eval loop over the
same inputs must reproduce them.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import attrs
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import trmkit
from trmkit.cli import cli

OFFICIAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "official-checkpoints"
RUNS = ("trm-att", "trm-mlpt", "hrm", "trm-att-compiled")
MODEL_OF = {"trm-att": "trm", "trm-mlpt": "trm", "hrm": "hrm", "trm-att-compiled": "trm"}

pytestmark = pytest.mark.skipif(not OFFICIAL.is_dir(), reason="shared official checkpoints absent")


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    root = tmp_path_factory.mktemp("imported")
    out = {}
    for name in RUNS:
        result = run(
            "checkpoint",
            "import",
            OFFICIAL / "runs" / name,
            "--out",
            root / name,
            "--data",
            OFFICIAL / "dataset",
        )
        assert result.exit_code == 0, result.output
        out[name] = root / name
    return out


def _batch(expected):
    return {
        "inputs": torch.from_numpy(expected["inputs"].astype(np.int32)),
        "labels": torch.from_numpy(expected["labels"].astype(np.int32)),
        "puzzle_identifiers": torch.from_numpy(expected["puzzle_identifiers"].astype(np.int32)),
    }


def _rollout(model, batch, steps):
    outputs = []
    with torch.inference_mode():
        carry = model.initial_carry(batch)
        for _ in range(steps):
            carry, _, _, out, _ = model(carry, batch)
            outputs.append(
                {**{k: v.clone() for k, v in out.items()}, "halted": carry.halted.clone()}
            )
    return outputs


def _float64_rollout(bundle, batch, steps):
    """The same weights run in float64: the exact answer both fp32 codes approximate."""
    from trmkit.models import build_model

    manifest = trmkit.load(bundle).manifest
    config = {**manifest.model.config, "forward_dtype": "float64"}
    model = build_model(manifest.model.name, config).double()
    model.load_state_dict(
        {k: v.double() for k, v in trmkit.load(bundle).model.state_dict().items()}
    )
    model.eval()
    return _rollout(model, batch, steps)


@pytest.mark.parametrize("name", RUNS)
def test_imported_run_reproduces_the_official_outputs(imported, name):
    expected = np.load(OFFICIAL / "runs" / name / "expected.npz")
    model, manifest = trmkit.load(imported[name])
    assert manifest.model.name == MODEL_OF[name]
    assert manifest.task.name == "sudoku-extreme"
    batch = _batch(expected)
    steps = expected["logits"].shape[0]
    ours = _rollout(model, batch, steps)
    exact = _float64_rollout(imported[name], batch, steps)
    for s in range(steps):
        official = torch.from_numpy(expected["logits"][s]).double()
        gap = float((ours[s]["logits"].double() - official).abs().max())
        # The recursion amplifies fp32 rounding (MLP-t: ~5x per ACT step). Where the official
        # fp32 answer is itself further than 1e-4 from the float64 one, trmkit must be as
        # close to it as that rounding allows.
        own_rounding = float((official - exact[s]["logits"]).abs().max())
        assert gap <= max(1e-4, 2.0 * own_rounding), (s, gap, own_rounding)
        if s == 0:
            assert gap <= 1e-4
        for key in ("q_halt_logits", "q_continue_logits"):
            want = torch.from_numpy(expected[key][s]).float()
            assert torch.allclose(ours[s][key].float(), want, atol=1e-4, rtol=0), (s, key)
        assert np.array_equal(ours[s]["preds"].numpy(), expected["preds"][s]), s
        assert np.array_equal(ours[s]["halted"].numpy(), expected["halted"][s]), s


def test_attention_runs_match_to_1e_4_at_every_step(imported):
    for name in ("trm-att", "hrm", "trm-att-compiled"):
        expected = np.load(OFFICIAL / "runs" / name / "expected.npz")
        ours = _rollout(trmkit.load(imported[name]).model, _batch(expected), 4)
        for s in range(4):
            gap = (ours[s]["logits"] - torch.from_numpy(expected["logits"][s])).abs().max()
            assert float(gap) <= 1e-4, (name, s, float(gap))


def test_compiled_prefix_is_stripped_and_the_same_weights_result(imported):
    eager, compiled = trmkit.load(imported["trm-att"]), trmkit.load(imported["trm-att-compiled"])
    assert trmkit.load(imported["trm-att-compiled"]).manifest.dataset.store["compiled"] is True
    assert set(eager.model.state_dict()) == set(compiled.model.state_dict())
    assert compiled.manifest.step == 31 and eager.manifest.step == 62


def test_export_then_import_is_the_identity(imported, tmp_path):
    for name in RUNS:
        back = tmp_path / f"{name}-run"
        result = run("checkpoint", "export", imported[name], "--out", back)
        assert result.exit_code == 0, result.output
        original = torch.load(next((OFFICIAL / "runs" / name).glob("step_*")), weights_only=True)
        written = torch.load(next(back.glob("step_*")), weights_only=True)
        # default export is for a compiled pretrain.py (the official default): _orig_mod.
        assert all(k.startswith("_orig_mod.model.inner.") for k in written)
        strip = {k.removeprefix("_orig_mod."): v for k, v in original.items()}
        assert set(strip) == {k.removeprefix("_orig_mod.") for k in written}
        for key, tensor in written.items():
            assert torch.equal(tensor, strip[key.removeprefix("_orig_mod.")]), key
        again = tmp_path / f"{name}-again"
        result = run("checkpoint", "import", back, "--out", again, "--data", OFFICIAL / "dataset")
        assert result.exit_code == 0, result.output
        a, b = trmkit.load(imported[name]), trmkit.load(again)
        assert a.manifest.model == b.manifest.model
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_exported_config_reads_back_as_the_same_architecture(imported, tmp_path):
    import yaml

    run("checkpoint", "export", imported["trm-mlpt"], "--out", tmp_path / "run", "--eager")
    config = yaml.safe_load((tmp_path / "run" / "all_config.yaml").read_text())
    original = yaml.safe_load((OFFICIAL / "runs" / "trm-mlpt" / "all_config.yaml").read_text())
    for key in (
        "name",
        "H_cycles",
        "L_cycles",
        "L_layers",
        "hidden_size",
        "num_heads",
        "mlp_t",
        "pos_encodings",
        "puzzle_emb_len",
        "puzzle_emb_ndim",
        "halt_max_steps",
        "no_ACT_continue",
        "expansion",
    ):
        assert config["arch"][key] == original["arch"][key], key
    assert config["arch"]["loss"] == original["arch"]["loss"]
    for key in (
        "global_batch_size",
        "lr",
        "beta1",
        "beta2",
        "weight_decay",
        "ema",
        "ema_rate",
        "puzzle_emb_lr",
        "lr_warmup_steps",
    ):
        assert config[key] == original[key], key
    written = torch.load(tmp_path / "run" / "step_62", weights_only=True)
    assert all(k.startswith("model.inner.") for k in written)  # --eager: no _orig_mod.


def test_dimensions_without_data(tmp_path):
    # MLP-t: the token mixer's width gives seq_len + prefix; RoPE attention needs --task
    result = run(
        "checkpoint", "import", OFFICIAL / "runs" / "trm-mlpt" / "step_62", "--out", tmp_path / "a"
    )
    assert result.exit_code == 0, result.output
    assert "tensor shapes" in result.output
    assert trmkit.load(tmp_path / "a").manifest.dataset.seq_len == 81
    result = run("checkpoint", "import", OFFICIAL / "runs" / "trm-att", "--out", tmp_path / "b")
    one_line_error(result, "seq_len", "--data", "--task")
    assert not (tmp_path / "b").exists()
    result = run(
        "checkpoint",
        "import",
        OFFICIAL / "runs" / "trm-att",
        "--out",
        tmp_path / "b",
        "--task",
        "sudoku",
    )
    assert result.exit_code == 0, result.output
    assert trmkit.load(tmp_path / "b").manifest.task.name == "sudoku-extreme"


def test_data_paths_of_the_config_are_used(tmp_path):
    # all_config.yaml's data_paths (relative, as pretrain.py was run) resolve from the run dir
    runs = tmp_path / "runs" / "trm-att"
    shutil.copytree(OFFICIAL / "runs" / "trm-att", runs)
    (runs / "data").mkdir()
    shutil.copytree(OFFICIAL / "dataset", runs / "data" / "sudoku-100-aug-2")
    result = run("checkpoint", "import", runs, "--out", tmp_path / "bundle")
    assert result.exit_code == 0, result.output
    assert "data_paths" in result.output


def test_wrong_task_and_step_are_one_line(tmp_path):
    source = OFFICIAL / "runs" / "trm-att"
    one_line_error(
        run(
            "checkpoint",
            "import",
            source,
            "--out",
            tmp_path / "x",
            "--data",
            OFFICIAL / "dataset",
            "--task",
            "maze",
        ),
        "--task maze",
        "seq_len",
    )
    one_line_error(
        run("checkpoint", "import", source, "--out", tmp_path / "x", "--step", 7), "no step_7", "62"
    )
    assert not (tmp_path / "x").exists()


class NotATensor:
    pass


def _broken_runs(tmp_path):
    src = OFFICIAL / "runs" / "trm-att"

    def clone(name):
        target = tmp_path / name
        shutil.copytree(src, target)
        return target

    weights = (src / "step_62").read_bytes()
    corrupt = clone("corrupt")
    (corrupt / "step_62").write_bytes(bytes(b ^ 0x5A for b in weights[:4096]) + weights[4096:])
    middle = clone("corrupt-middle")  # header intact, a tensor record damaged
    mid = len(weights) // 2
    (middle / "step_62").write_bytes(weights[:mid] + b"\0" * 4096 + weights[mid + 4096 :])
    truncated = clone("truncated")
    (truncated / "step_62").write_bytes(weights[: len(weights) // 2])
    pickled = clone("pickled")
    with open(pickled / "step_62", "wb") as f:
        pickle.dump({"model.inner.H_init": NotATensor()}, f, protocol=2)
    pickled4 = clone("pickled-protocol-4")
    with open(pickled4 / "step_62", "wb") as f:
        pickle.dump({"model.inner.H_init": NotATensor()}, f, protocol=4)
    torch_obj = clone("torch-object")
    torch.save({"model.inner.H_init": NotATensor()}, torch_obj / "step_62")
    not_tensor = clone("not-tensor")
    torch.save({"model.inner.H_init": 3}, not_tensor / "step_62")
    extra = clone("extra-tensor")
    state = torch.load(src / "step_62", weights_only=True)
    torch.save({**state, "model.inner.mystery.weight": torch.zeros(2)}, extra / "step_62")
    wrong_shape = clone("wrong-shape")
    torch.save(
        {**state, "model.inner.lm_head.weight": torch.zeros(11, 32)}, wrong_shape / "step_62"
    )
    unknown_arch = clone("unknown-arch")
    cfg = (unknown_arch / "all_config.yaml").read_text()
    (unknown_arch / "all_config.yaml").write_text(
        cfg.replace("recursive_reasoning.trm@", "recursive_reasoning.mamba@")
    )
    no_config = clone("no-config")
    (no_config / "all_config.yaml").unlink()
    bad_yaml = clone("bad-yaml")
    (bad_yaml / "all_config.yaml").write_text("arch: [unclosed\n")
    return {
        "corrupt": (corrupt, "not a torch checkpoint"),
        "truncated": (truncated, "not a readable torch checkpoint"),
        "corrupt-middle": (middle, "fails its CRC check"),
        "pickled": (pickled, "objects other than tensors"),
        "pickled-protocol-4": (pickled4, "refused"),
        "torch-object": (torch_obj, "objects other than tensors"),
        "not-tensor": (not_tensor, "not a tensor"),
        "extra-tensor": (extra, "'mystery.weight' has no place"),
        "wrong-shape": (wrong_shape, "lm_head.weight' has shape (11, 32)"),
        "unknown-arch": (unknown_arch, "recursive_reasoning.mamba@"),
        "no-config": (no_config, "all_config.yaml: missing"),
        "bad-yaml": (bad_yaml, "not valid YAML"),
    }


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_bad_checkpoints_are_one_line_and_write_nothing(tmp_path):
    for name, (path, message) in _broken_runs(tmp_path).items():
        out = tmp_path / f"out-{name}"
        result = run("checkpoint", "import", path, "--out", out, "--data", OFFICIAL / "dataset")
        one_line_error(result, message)
        assert not out.exists(), name
        assert not list(tmp_path.glob(f".out-{name}*")), name


def test_existing_out_is_kept_without_force(imported, tmp_path):
    out = tmp_path / "bundle"
    shutil.copytree(imported["trm-att"], out)
    before = (out / "manifest.json").read_text()
    one_line_error(
        run(
            "checkpoint",
            "import",
            OFFICIAL / "runs" / "hrm",
            "--out",
            out,
            "--data",
            OFFICIAL / "dataset",
        ),
        "already exists",
        "--force",
    )
    assert (out / "manifest.json").read_text() == before
    result = run(
        "checkpoint",
        "import",
        OFFICIAL / "runs" / "hrm",
        "--out",
        out,
        "--data",
        OFFICIAL / "dataset",
        "--force",
    )
    assert result.exit_code == 0 and trmkit.load(out).manifest.model.name == "hrm"


def test_hub_source_offline_fails_at_once(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    one_line_error(
        run("checkpoint", "import", "hf://someone/trm-sudoku", "--out", tmp_path / "x"),
        "HF_HUB_OFFLINE",
    )
    monkeypatch.delenv("HF_HUB_OFFLINE")
    import socket

    def refuse(*args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    one_line_error(
        run("checkpoint", "import", "hf://someone/trm-sudoku/runs/a", "--out", tmp_path / "x"),
        "cannot reach huggingface.co",
        "offline",
    )
    one_line_error(
        run("checkpoint", "import", "hf://justowner", "--out", tmp_path / "x"), "hf://OWNER/REPO"
    )
    assert not (tmp_path / "x").exists()


def test_info_on_official_runs_and_bundles(imported):
    result = run("checkpoint", "info", OFFICIAL / "runs" / "hrm", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["architecture"] == "hrm" and info["step"] == 62
    from trmkit.models import count_parameters

    assert info["trainable_parameters"] == count_parameters(trmkit.load(imported["hrm"]).model)
    result = run("checkpoint", "info", imported["trm-mlpt"], "--json")
    info = json.loads(result.output)
    assert info["kind"] == "trmkit checkpoint bundle" and info["task"] == "sudoku-extreme"
    assert info["architecture"] == "trm" and info["seq_len"] == 81
    text = run("checkpoint", "info", OFFICIAL / "runs" / "trm-att-compiled")
    assert text.exit_code == 0 and "torch.compile'd" in text.output


def test_parameter_counts_agree_both_ways(imported):
    from trmkit.interop.official import parameter_count, read_weights
    from trmkit.models import count_parameters

    for name in RUNS:
        tensors, _ = read_weights(next((OFFICIAL / "runs" / name).glob("step_*")))
        assert parameter_count(tensors) == count_parameters(trmkit.load(imported[name]).model)


def test_eval_and_solve_accept_an_imported_bundle(imported, tmp_path):
    store = tmp_path / "store"
    result = run("data", "import", OFFICIAL / "dataset", "--task", "sudoku", "--out", store)
    assert result.exit_code == 0, result.output
    result = run(
        "eval",
        imported["trm-att"],
        "--data",
        store,
        "--max-examples",
        16,
        "--batch-size",
        8,
        "--out",
        tmp_path / "eval",
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["count"] == 16
    # the same 8 examples as expected.npz: eval's per-step exact accuracy matches its preds
    expected = np.load(OFFICIAL / "runs" / "trm-att" / "expected.npz")
    inputs = expected["inputs"][0]
    puzzle = "".join("." if t == 1 else str(int(t) - 1) for t in inputs)
    result = run("solve", imported["trm-att"], puzzle, "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    grid = answer[0]["answer"] if isinstance(answer, list) else answer["answers"][0]["answer"]
    want = (expected["preds"][-1][0].reshape(9, 9).astype(int) - 1).tolist()
    assert grid == want


SMALL_MODELS = {
    "trm": dict(mixer="attention", h_cycles=2, l_cycles=2, l_layers=1),
    "trm-mlp_t": dict(mixer="mlp_t", pos_encodings="none", h_cycles=2, l_cycles=2, l_layers=1),
    "trm-singlez": dict(h_cycles=2, l_cycles=2, l_layers=1, pos_encodings="learned"),
    "trm-multiz": dict(h_cycles=1, l_cycles=6, l_layers=1, num_z=6),
    "hrm": dict(h_cycles=1, l_cycles=2, h_layers=1, l_layers=1),
    "transformer": dict(num_layers=2, halt_rule="fixed"),
}


@pytest.mark.parametrize("variant", sorted(SMALL_MODELS))
def test_every_architecture_exports_and_imports_back(variant, tmp_path):
    """No official checkpoint exists for every variant: the name map is pinned both ways."""
    from trmkit.checkpoint import (
        DatasetRecord,
        Manifest,
        ModelRecord,
        TaskRecord,
        write_bundle,
    )
    from trmkit.interop.checkpoints import export_bundle, import_run
    from trmkit.interop.official import read_run
    from trmkit.models import build_model

    name = variant.split("-mlp_t")[0]
    fields = dict(
        seq_len=81,
        vocab_size=11,
        hidden_size=16,
        num_heads=2,
        puzzle_emb_ndim=16,
        halt_max_steps=3,
        **SMALL_MODELS[variant],
    )
    torch.manual_seed(1)
    model = build_model(name, fields)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            tensor.add_(torch.randn_like(tensor) * 0.1)  # no tensor left at a default init
    bundle = write_bundle(
        tmp_path / "bundle",
        Manifest(
            step=7,
            model=ModelRecord(name=name, config=attrs.asdict(model.config)),
            task=TaskRecord(name="sudoku-extreme", version="1"),
            dataset=DatasetRecord(seq_len=81, vocab_size=11),
        ),
        model.state_dict(),
    )
    run_dir = export_bundle(bundle, tmp_path / "official", raw=True)
    run = read_run(run_dir)
    assert run.model_name == name and run.step == 7 and run.compiled
    result = import_run(run_dir, tmp_path / "back", task_name="sudoku")
    back = trmkit.load(result.bundle)
    assert back.manifest.model.config == attrs.asdict(model.config)
    unused = {"core.y_init"} if name == "trm-singlez" else set()
    a, b = model.state_dict(), back.model.state_dict()
    assert set(a) == set(b)
    for key in set(a) - unused:
        assert torch.equal(a[key], b[key]), key
