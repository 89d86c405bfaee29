"""The report directory of `trmkit eval` names the options that differ from the defaults
(docs/training.md, "trmkit eval"): two evaluations with different options never share one."""

from pathlib import Path

from trmkit.commands.eval import default_out, options_label
from trmkit.inference.policy import InferencePolicy


def test_defaults_have_no_label():
    assert options_label(InferencePolicy()) == ""


def test_label_spells_each_changed_option():
    policy = InferencePolicy(
        steps=32, halt="converged:2", samples=8, augment=False, noise=0.5, select="valid", seed=3
    )
    assert options_label(policy, raw=True, max_examples=100) == (
        "steps32-halt_converged2-select_valid-samples8-no_augment-noise0.5-seed3-raw-first100"
    )
    assert options_label(InferencePolicy(steps=4), sweep=True) == "sweep-steps4"


def test_distinct_options_distinct_labels():
    a = options_label(InferencePolicy(halt="q"))
    b = options_label(InferencePolicy(select="q"))
    assert a != b and {a, b} == {"halt_q", "select_q"}


def test_long_label_becomes_a_hash():
    policy = InferencePolicy(
        steps=16,
        halt="converged:3",
        select="valid",
        samples=64,
        augment=False,
        noise=0.25,
        seed=123456,
    )
    label = options_label(policy, raw=True, max_examples=123456, sweep=True)
    assert label.startswith("opts-") and len(label) == 17
    assert label == options_label(policy, raw=True, max_examples=123456, sweep=True)
    assert label != options_label(policy, raw=True, max_examples=123457, sweep=True)


def test_default_out_inside_a_run(tmp_path):
    bundle = tmp_path / "run" / "checkpoints" / "step_8"
    bundle.mkdir(parents=True)
    assert default_out(bundle) == tmp_path / "run" / "eval" / "step_8-cli"
    out = default_out(bundle, "halt_q")
    assert out == tmp_path / "run" / "eval" / "step_8-cli-halt_q"
    out.mkdir(parents=True)
    assert default_out(bundle, "halt_q").name == "step_8-cli-halt_q-2"
    assert default_out(Path("elsewhere/step_3"), "raw") == Path("eval-step_3-raw")
