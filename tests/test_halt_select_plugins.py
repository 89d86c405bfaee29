"""A halting policy and a selection rule added from outside trmkit (`register_components`,
kinds "halt_policy" and "select_rule"), reading a per-step auxiliary output: their decisions
on a hand-built `Record`, the engine keeping the output a third-party model returns, `trmkit
eval` and the Python API running them, and the one-line refusal of a model without the
output (docs/engine.md, "Auxiliary outputs, halting policies and selection rules")."""

from __future__ import annotations

import json
from typing import ClassVar

import attrs
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_third_party_model import RECIPE_MODEL, TinyConfig, TinyRecurrent
from tiny_training import build_tiny_data, one_thread, write_recipe

from trmkit import load, plugins
from trmkit.cli import cli
from trmkit.data.loader import EvalLoader
from trmkit.data.store import open_store
from trmkit.errors import OptionError
from trmkit.evaluation import evaluate
from trmkit.hookspecs import hookimpl
from trmkit.inference.engine import Record, RowBatch, decide, record, stop_steps
from trmkit.inference.policy import (
    Candidates,
    HaltPolicy,
    InferencePolicy,
    SelectPolicy,
    Trajectories,
    best,
    record_bytes,
)
from trmkit.inference.sweep import default_grid
from trmkit.models.rollout import inference_depth, rollout


# ----------------------------------------------------------------------- the plugin's rules
@attrs.frozen
class ResidualHalt:
    """Stop at the first step whose residual is below EPS."""

    eps: float = 0.01
    needs: ClassVar[tuple[str, ...]] = ("residual",)
    checks: ClassVar[bool] = False

    def parse(self, arg: str, option: str) -> ResidualHalt:
        try:
            eps = float(arg) if arg else 0.01
        except ValueError:
            eps = -1.0
        if not eps > 0:
            raise OptionError(f"{option}: the threshold EPS must be a number > 0")
        return ResidualHalt(eps)

    def argument(self) -> str:
        return f"{self.eps:g}"

    def fired(self, t: Trajectories) -> np.ndarray:
        return t.aux["residual"] < self.eps


@attrs.frozen
class ResidualSelect:
    """The decodable answer with the lowest mean residual over the N steps up to its stop."""

    window: int = 1
    needs: ClassVar[tuple[str, ...]] = ("residual",)
    checks: ClassVar[bool] = False

    def parse(self, arg: str, option: str) -> ResidualSelect:
        if not arg:
            return ResidualSelect()
        if not arg.isdigit() or int(arg) < 1:
            raise OptionError(f"{option}: the window N must be an integer >= 1")
        return ResidualSelect(int(arg))

    def argument(self) -> str:
        return str(self.window)

    def choose(self, c: Candidates) -> np.ndarray:
        residual = c.history.aux["residual"]
        k = np.arange(residual.shape[0])[:, None, None]
        inside = (k < c.steps[None]) & (k >= c.steps[None] - self.window)
        mean = (residual * inside).sum(axis=0) / inside.sum(axis=0)
        return best(c.ok, -mean)


class ResidualRules:
    @staticmethod
    @hookimpl
    def register_components(register):
        register("halt_policy", "toy_residual", ResidualHalt(), "stop when the residual < EPS")
        register("select_rule", "toy_residual", ResidualSelect(), "the lowest mean residual")


class TinyResidual(TinyRecurrent):
    """The third-party test model, plus the auxiliary output ``residual``: the mean absolute
    change of the logits in this step."""

    def forward(self, carry, batch):
        before = self.head(torch.where(carry.halted[:, None, None], 0.0, carry.h))
        result = super().forward(carry, batch)
        change = (result.outputs["logits"] - before).abs().mean(dim=(1, 2))
        result.outputs["residual"] = change
        return result


def _arch(factory):
    class Arch:
        @staticmethod
        @hookimpl
        def register_models(register):
            register("tiny-residual", factory, TinyConfig, "a model returning a residual")

    return Arch


@pytest.fixture
def rules():
    plugins.load_plugins()
    plugins.pm.register(ResidualRules, name="residual-rules")
    plugins.reset()
    yield
    plugins.pm.unregister(name="residual-rules")
    plugins.reset()


# ------------------------------------------------------------ decisions on a built record
def _record() -> Record:
    """1 row, 3 samples, 4 steps; sample s answers 10 s + k at step k (all distinct)."""
    preds = np.array([[[10 * s + k] for s in range(3)] for k in range(1, 5)], np.int16)
    residual = np.array(
        [[0.5, 0.4, 0.2], [0.3, 0.08, 0.15], [0.2, 0.5, 0.12], [0.05, 0.5, 0.11]], np.float32
    )
    shape = (4, 3, 1)
    return Record(
        preds=preds[..., None],
        q=np.zeros(shape, np.float32),
        same=np.zeros(shape, bool),
        inputs=np.zeros((1, 1)),
        seconds=0.0,
        aux={"residual": residual[..., None]},
    )


def test_plugin_rules_decide_a_hand_built_record(rules):
    rec = _record()
    halt = HaltPolicy.parse("toy_residual:0.1")
    assert str(halt) == "toy_residual:0.1" and halt.needs == ("residual",)
    # residual < 0.1 first at step 4 (sample 0) and 2 (sample 1); sample 2 never: the depth
    assert stop_steps(rec, halt, 4, 3)[0].tolist() == [[4], [2], [4]]
    assert stop_steps(rec, halt, 3, 3)[0].tolist() == [[3], [2], [3]]
    # mean residual over the last 2 steps: 0.125, (0.4 + 0.08) / 2 = 0.24, 0.115 -> sample 2
    d = decide(rec, halt, "toy_residual:2")
    assert d.sample.tolist() == [2] and d.preds.tolist() == [[24]]
    assert d.steps.tolist() == [[4], [2], [4]]
    # the last step only: 0.05, 0.08, 0.11 -> sample 0
    assert decide(rec, halt, SelectPolicy.parse("toy_residual")).preds.tolist() == [[4]]
    # fixed halting, last step only: 0.05, 0.5, 0.11 -> sample 0; at depth 2: 0.3, 0.08, 0.15
    assert decide(rec, "fixed", "toy_residual:1").preds.tolist() == [[4]]
    assert decide(rec, "fixed", "toy_residual:1", depth=2).preds.tolist() == [[12]]
    # a built-in selection rule after the plugin's halting: distinct answers, equal
    # confidences: the lowest sample
    assert decide(rec, halt, "vote").preds.tolist() == [[4]]


def test_rule_arguments_and_unknown_names_are_one_line(rules):
    with pytest.raises(OptionError, match=r"^--halt 'toy_residual:x': the threshold EPS"):
        HaltPolicy.parse("toy_residual:x")
    with pytest.raises(OptionError, match=r"^--select 'toy_residual:0': the window N"):
        InferencePolicy(select="toy_residual:0")
    with pytest.raises(
        Exception, match=r"^--select 'nope': unknown select_rule 'nope'; known: .*residual"
    ):
        SelectPolicy.parse("nope")
    policy = InferencePolicy(halt="toy_residual:0.5", select="toy_residual:3", samples=2)
    assert policy.needs() == {"residual": "--halt toy_residual"}
    assert str(policy.halt) == "toy_residual:0.5" and str(policy.select) == "toy_residual:3"
    # the built-ins keep their string forms; kept outputs count in the record's bytes
    assert [str(InferencePolicy(halt=h).halt) for h in ("fixed", "q", "converged")] == [
        "fixed",
        "q",
        "converged:2",
    ]
    assert record_bytes(2, 3, 4, 10, aux=2) - record_bytes(2, 3, 4, 10) == 2 * 3 * 4 * 2 * 4


# ------------------------------------------------------------------- a third-party model
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    before = one_thread()
    plugins.load_plugins()
    plugins.pm.register(_arch(TinyResidual), name="tiny-residual-arch")
    plugins.reset()
    tmp = tmp_path_factory.mktemp("residual")
    text = write_recipe(tmp).read_text()
    head, _, rest = text.partition("[model]")
    model = RECIPE_MODEL.replace("tiny-recurrent", "tiny-residual")
    recipe = tmp / "tiny-residual.toml"
    recipe.write_text(head + model + "\n[optim]" + rest.partition("[optim]")[2])
    data = build_tiny_data(tmp / "data")
    run = tmp / "run"
    args = ["train", "--no-progress", "--recipe", recipe, "--data", data, "--out", run]
    result = CliRunner().invoke(cli, [*map(str, args), "--max-steps", "4"])
    try:
        assert result.exit_code == 0, result.output
        yield run, data
    finally:
        plugins.pm.unregister(name="tiny-residual-arch")
        plugins.reset()
        torch.set_num_threads(before)


def test_engine_keeps_the_output_and_eval_uses_the_plugin_rules(trained, rules, tmp_path):
    run, data = trained
    bundle = load(run)
    task = plugins.get_task("sudoku-4x4")
    split = open_store(data, task).split("test")
    model = bundle.model.eval()
    batch = next(iter(EvalLoader(split, 8)))
    rows = RowBatch(
        np.asarray(batch["inputs"]),
        np.asarray(batch["puzzle_identifiers"]),
        np.asarray(batch["example_index"]),
    )
    # kept per step, exactly what the model returned; nothing kept when no rule needs it
    policy = InferencePolicy(
        halt="toy_residual:0.05", select="toy_residual:2", samples=2, noise=0.0
    )
    rec = record(model, rows, policy, task, depth=4)
    assert record(model, rows, InferencePolicy(), task, depth=4).aux == {}
    direct = []
    model_batch = {k: torch.as_tensor(batch[k]) for k in ("inputs", "labels", "puzzle_identifiers")}
    with inference_depth(model, 4):
        rollout(model, model_batch, 4, on_step=lambda v: direct.append(v.aux["residual"].numpy()))
    np.testing.assert_allclose(rec.aux["residual"][:, 0], np.stack(direct), rtol=1e-5, atol=1e-7)
    assert rec.aux["residual"].shape == (4, 2, len(rows.inputs))
    # the engine's stops are the first step below 0.05 (else 4), from the kept outputs
    below = rec.aux["residual"] < 0.05
    expected = np.where(below.any(axis=0), below.argmax(axis=0) + 1, 4)
    assert stop_steps(rec, policy.halt, 4, 2)[0].tolist() == expected.tolist()
    # the sweep's default grid runs only rules that need no auxiliary output
    grid = default_grid(model, task, False, depths=(1, 2), samples=(1,))
    assert [str(h) for h in grid.halts] == ["fixed", "q", "converged:2"]
    assert [str(s) for s in grid.selects] == ["q", "vote", "converged", "valid"]
    # the Python API and `trmkit eval` run the plugin's rules
    report = evaluate(model, split, task, batch_size=16, policy=attrs.evolve(policy, steps=4))
    assert (
        report.metrics["halt"] == "toy_residual:0.05"
        and report.metrics["select"] == "toy_residual:2"
    )
    assert 2 <= report.metrics["forward_passes"] <= 2 * 4
    out = tmp_path / "ev"
    options = ["--steps", "4", "--halt", "toy_residual:0.05", "--select", "toy_residual:2"]
    result = CliRunner().invoke(
        cli, ["eval", str(run), "--out", str(out), *options, "--samples", "2"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["halt"] == "toy_residual:0.05" and metrics["select"] == "toy_residual:2"
    assert metrics["exact_accuracy"] == report.metrics["exact_accuracy"]
    assert metrics["forward_passes"] == report.metrics["forward_passes"]


def test_a_model_without_the_output_is_refused_in_one_line(trained, rules, tmp_path):
    """The same checkpoint served by a factory whose model returns no residual."""
    run, _ = trained
    plugins.pm.unregister(name="tiny-residual-arch")
    plugins.pm.register(_arch(TinyRecurrent), name="tiny-residual-arch")
    plugins.reset()
    try:
        for command in (
            ["eval", str(run), "--out", str(tmp_path / "ev"), "--halt", "toy_residual:0.01"],
            ["solve", str(run), "1..4.3....2..1..", "--samples", "2", "--select", "toy_residual"],
        ):
            result = CliRunner().invoke(cli, command)
            assert result.exit_code == 1, result.output
            lines = [line for line in result.output.strip().splitlines() if line.strip()]
            option = "--halt toy_residual" if command[0] == "eval" else "--select toy_residual"
            assert len(lines) == 1 and "Traceback" not in result.output, result.output
            assert f"{option}: the model tiny-residual keeps no 'residual' output" in lines[0]
        assert not (tmp_path / "ev").exists()
    finally:
        plugins.pm.unregister(name="tiny-residual-arch")
        plugins.pm.register(_arch(TinyResidual), name="tiny-residual-arch")
        plugins.reset()


def test_the_docs_example_registers_and_halts():
    """The plugin in docs/engine.md, "Auxiliary outputs, halting policies and selection
    rules", is real: it registers and stops where the residual first drops below EPS."""
    import re
    import types
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "engine.md").read_text()
    section = doc.split("### Auxiliary outputs, halting policies and selection rules")[1]
    source = re.search(r"```python\n(.*?)```", section, re.S)
    assert source, "docs/engine.md lost its halting-policy example"
    module = types.ModuleType("trmkit_residual_doc")
    exec(compile(source.group(1), "docs/engine.md", "exec"), module.__dict__)
    plugins.load_plugins()
    plugins.pm.register(module, name="residual-doc")
    plugins.reset()
    try:
        rec = _record()
        halt = HaltPolicy.parse("residual_eps:0.1")
        assert str(halt) == "residual_eps:0.1"
        assert stop_steps(rec, halt, 4, 3)[0].tolist() == [[4], [2], [4]]
    finally:
        plugins.pm.unregister(name="residual-doc")
        plugins.reset()
