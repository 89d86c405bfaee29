"""Bundles: the manifest is the truth; the Python API (docs/errors.md, same heading).

A bundle's manifest decides which weight files must exist and which tensors (keys, shapes,
dtypes) they hold; a safetensors header with a duplicated key, a manifest asking for absurd
recursion, and misuse of `trmkit.load` / `trmkit.evaluation.evaluate` are one-line errors.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import attrs
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file, save_file
from tiny_training import tiny_model_config

import trmkit
from trmkit.checkpoint import DatasetRecord, Manifest, ModelRecord, TaskRecord, write_bundle
from trmkit.cli import cli
from trmkit.config import COMPUTE_BOUNDS, MAX_RECURSION
from trmkit.errors import CheckpointError, OptionError, TrmkitError

REPO = Path(__file__).parent.parent
CONFIG = tiny_model_config(seq_len=16, vocab_size=6)


def _model(**changes):
    from trmkit.models import build_model

    torch.manual_seed(0)
    return build_model("trm", {**CONFIG, **changes})


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A loadable sudoku-4x4 bundle with EMA weights (the raw weights + 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    model = _model()
    ema = {k: v.detach() + 1.0 for k, v in model.named_parameters() if v.requires_grad}
    manifest = Manifest(
        step=1,
        model=ModelRecord(name="trm", config=attrs.asdict(model.config)),
        task=TaskRecord(name="sudoku-4x4", version="1"),
        dataset=DatasetRecord(seq_len=16, vocab_size=6),
    )
    out = write_bundle(
        tmp_path_factory.mktemp("faults") / "b", manifest, model.state_dict(), ema=ema
    )
    yield out
    torch.set_num_threads(before)


@pytest.fixture
def bundle(source, tmp_path) -> Path:
    return Path(shutil.copytree(source, tmp_path / "b"))


def _one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def _edit_manifest(bundle: Path, change) -> None:
    data = json.loads((bundle / "manifest.json").read_text())
    change(data)
    (bundle / "manifest.json").write_text(json.dumps(data))


def _rewrite(file: Path, change) -> None:
    tensors = load_file(str(file))
    change(tensors)
    save_file(tensors, str(file))


def _raw_header(file: Path) -> tuple[str, bytes]:
    data = file.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    return data[8 : 8 + n].decode(), data[8 + n :]


def _write_raw(file: Path, header: str, body: bytes, length: int | None = None) -> None:
    raw = header.encode()
    file.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + body)


# ------------------------------------------------------------- the manifest is the truth


def test_the_bundle_loads_ema_by_default_and_raw_on_request(bundle):
    ema, manifest = trmkit.load(bundle)
    raw = trmkit.load(bundle, weights="raw").model
    assert manifest.ema
    for key, value in raw.named_parameters():
        assert torch.equal(dict(ema.named_parameters())[key], value + 1.0), key


def test_ema_announced_but_missing(bundle):
    (bundle / "ema.safetensors").unlink()
    with pytest.raises(CheckpointError) as exc:
        trmkit.load(bundle)
    line = _one_line(exc)
    assert "ema.safetensors: missing" in line and "weights.ema is true" in line
    with pytest.raises(CheckpointError):  # the bundle is damaged whatever is asked for
        trmkit.load(bundle, weights="raw")


def test_ema_holding_one_of_the_tensors(bundle):
    keep = None

    def one(tensors):
        nonlocal keep
        keep = sorted(tensors)[0]
        for key in sorted(tensors)[1:]:
            del tensors[key]

    _rewrite(bundle / "ema.safetensors", one)
    with pytest.raises(CheckpointError) as exc:
        trmkit.load(bundle)
    line = _one_line(exc)
    expected = sum(p.requires_grad for p in _model().parameters())
    assert f"ema.safetensors: holds 1 of the {expected} tensors" in line
    assert "missing '" in line and "more" in line


def test_ema_with_a_foreign_tensor(bundle):
    _rewrite(bundle / "ema.safetensors", lambda t: t.__setitem__("stowaway", torch.zeros(2)))
    with pytest.raises(CheckpointError, match="unexpected 'stowaway'") as exc:
        trmkit.load(bundle)
    _one_line(exc)


def test_ema_file_the_manifest_does_not_announce(bundle):
    _edit_manifest(bundle, lambda m: m["weights"].__setitem__("ema", False))
    with pytest.raises(CheckpointError, match="ema.safetensors: present") as exc:
        trmkit.load(bundle)
    assert "weights.ema is false" in _one_line(exc)
    (bundle / "ema.safetensors").unlink()
    assert not trmkit.load(bundle).manifest.ema  # without the file it loads (raw weights)


@pytest.mark.parametrize("file", ["model", "ema"])
def test_a_tensor_in_another_dtype_is_not_cast(bundle, file):
    def half(tensors):
        key = sorted(k for k in tensors if tensors[k].is_floating_point())[0]
        tensors[key] = tensors[key].half()

    _rewrite(bundle / f"{file}.safetensors", half)
    with pytest.raises(CheckpointError) as exc:
        trmkit.load(bundle)
    line = _one_line(exc)
    assert f"{file}.safetensors: tensor" in line and "stored as F16" in line and "F32" in line


def test_a_duplicated_key_in_the_header(bundle):
    file = bundle / "model.safetensors"
    header, body = _raw_header(file)
    entries = json.loads(header)
    key = sorted(k for k in entries if entries.get(k, {}).get("dtype") == "F32")[0]
    # the same name twice, the second reading the same bytes as int32
    second = json.dumps({**entries[key], "dtype": "I32"})
    _write_raw(file, header.rstrip()[:-1] + f", {json.dumps(key)}: {second}}}", body)
    assert load_file(str(file))[key].dtype == torch.int32  # the loader alone takes it silently
    with pytest.raises(CheckpointError) as exc:
        trmkit.load(bundle)
    assert f"names tensor {key!r} twice" in _one_line(exc)


@pytest.mark.parametrize(
    ("length", "culprit"),
    [(2**63, "header length"), (10**6, "header length"), (2, "not valid JSON")],
)
def test_a_header_length_beyond_the_file(bundle, length, culprit):
    file = bundle / "model.safetensors"
    header, body = _raw_header(file)
    _write_raw(file, header, body, length=length)
    with pytest.raises(CheckpointError, match=culprit) as exc:
        trmkit.load(bundle)
    assert "model.safetensors: corrupt or truncated" in _one_line(exc)


def test_a_header_too_large_for_any_model_is_refused_before_parsing(bundle):
    """Every entry valid, the header inside the file: only its size (above 16 MiB, ~100
    bytes per tensor) refuses it, before the JSON is parsed into memory."""
    file = bundle / "model.safetensors"
    header, body = _raw_header(file)
    fake = ", ".join(
        f'"f{i}": {{"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}' for i in range(300_000)
    )
    _write_raw(file, header.rstrip()[:-1] + ", " + fake + "}", body)
    assert file.stat().st_size > 16 << 20
    with pytest.raises(CheckpointError, match="header length") as exc:
        trmkit.load(bundle)
    assert "model.safetensors: corrupt or truncated" in _one_line(exc)


def test_a_deeply_nested_header(bundle):
    file = bundle / "model.safetensors"
    _, body = _raw_header(file)
    _write_raw(file, '{"x": ' + "[" * 5000 + "]" * 5000 + "}", body)
    with pytest.raises(CheckpointError, match="nested") as exc:
        trmkit.load(bundle)
    _one_line(exc)


@pytest.mark.parametrize("file", ["model.safetensors", "ema.safetensors"])
@pytest.mark.parametrize("kind", ["directory", "pipe"])
def test_a_weight_file_that_is_not_a_regular_file(bundle, file, kind):
    import os

    (bundle / file).unlink()
    if kind == "directory":
        (bundle / file).mkdir()
    else:
        os.mkfifo(bundle / file)  # never opened: a read would block
    with pytest.raises(CheckpointError) as exc:
        trmkit.load(bundle)
    assert f"{file}: not a regular file (a directory, pipe or device)" in _one_line(exc)


# ------------------------------------------------------------------ compute of a manifest


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("l_cycles", 1e9),
        ("h_cycles", 10**6),
        ("halt_max_steps", 10**9),
        ("l_layers", 10**9),  # would build 1e9 blocks on the meta device first
        ("seq_len", 10**9),
        ("puzzle_emb_len", 10**7),
    ],
)
def test_absurd_compute_is_refused_naming_field_value_and_bound(bundle, field, value):
    _edit_manifest(bundle, lambda m: m["model"]["config"].__setitem__(field, value))
    with pytest.raises(CheckpointError) as exc:
        trmkit.load(bundle)
    line = _one_line(exc)
    assert f"model.config.{field} is {int(value)}" in line
    assert f"the {COMPUTE_BOUNDS[field]} allowed" in line


def test_recursion_within_each_bound_but_absurd_in_total(bundle):
    def deep(m):
        m["model"]["config"].update(halt_max_steps=256, h_cycles=64, l_cycles=64)

    _edit_manifest(bundle, deep)
    with pytest.raises(CheckpointError) as exc:
        trmkit.load(bundle)
    assert f"{256 * 64 * 64} recursions per puzzle, more than the {MAX_RECURSION}" in _one_line(exc)


def test_model_dims_must_equal_the_dataset_record(bundle):
    _edit_manifest(bundle, lambda m: m["model"]["config"].__setitem__("vocab_size", 7))
    with pytest.raises(CheckpointError, match="model.config.vocab_size is 7 but dataset"):
        trmkit.load(bundle)


@pytest.mark.parametrize("recipe", sorted((REPO / "tasks").glob("*.toml")), ids=lambda p: p.stem)
def test_every_shipped_recipe_is_far_within_the_bounds(recipe):
    from trmkit.config import load_recipe

    dims = dict(seq_len=900, vocab_size=12, num_puzzle_identifiers=1, batch_size=1)
    config = attrs.asdict(load_recipe(recipe).model_config(**dims))
    for key, bound in COMPUTE_BOUNDS.items():
        assert config.get(key, 0) * 4 <= bound, key
    depth = config["halt_max_steps"] * config.get("h_cycles", 1) * config.get("l_cycles", 1)
    assert depth * 16 <= MAX_RECURSION


# ------------------------------------------------------------------------- Python API


@pytest.mark.parametrize("weights", ["EMA", "raw weights", None, True])
def test_load_refuses_unknown_weights_listing_the_accepted(bundle, weights):
    with pytest.raises(OptionError) as exc:
        trmkit.load(bundle, weights=weights)
    assert "not one of 'ema', 'raw'" in _one_line(exc)


def _unavailable_device() -> str:
    if not torch.cuda.is_available():
        return "cuda"
    return f"cuda:{torch.cuda.device_count()}"  # one past the last GPU


@pytest.mark.parametrize("device", [_unavailable_device(), "nonsense", "meta"])
def test_load_refuses_a_device_this_machine_lacks(bundle, device):
    with pytest.raises(OptionError) as exc:
        trmkit.load(bundle, device=device)
    line = _one_line(exc)
    assert line.startswith(f"device '{device}'") and "device='cpu'" in line


def test_load_on_cpu_gives_a_cpu_model(bundle):
    model = trmkit.load(bundle, device=torch.device("cpu")).model
    assert next(model.parameters()).device.type == "cpu"


def test_load_of_something_that_is_not_a_bundle(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a checkpoint bundle") as exc:
        trmkit.load(tmp_path / "empty")
    _one_line(exc)
    with pytest.raises(OptionError, match="path 42"):
        trmkit.load(42)
    with pytest.raises(OptionError, match="without NUL"):
        trmkit.load(str(tmp_path / "a\0b"))


@attrs.define
class _Split:
    meta: object


def _split(**changes):
    from trmkit.data.store import SplitMeta

    meta = dict(
        seq_len=16,
        vocab_size=6,
        pad_id=0,
        ignore_label_id=0,
        blank_identifier_id=0,
        num_puzzle_identifiers=1,
        total_groups=1,
        total_puzzles=1,
        total_examples=1,
        mean_puzzle_examples=1.0,
        transform_size=1,
    )
    return _Split(SplitMeta(**{**meta, **changes}))


@pytest.mark.parametrize(
    ("change", "culprit"),
    [
        ({"seq_len": 81}, "seq_len: the model was built for 16, the split has 81"),
        ({"vocab_size": 11}, "vocab_size: the model was built for 6, the split has 11"),
        ({"num_puzzle_identifiers": 5}, "num_puzzle_identifiers: the model was built for 1"),
    ],
)
def test_evaluate_refuses_a_split_of_other_shapes(source, change, culprit):
    from trmkit.evaluation import evaluate

    model = trmkit.load(source).model
    with pytest.raises(TrmkitError) as exc:
        evaluate(model, _split(**change), None, batch_size=4)
    assert culprit in _one_line(exc)


@pytest.mark.parametrize("batch_size", [0, -3, True, 2.5])
def test_evaluate_refuses_a_batch_size_below_one(source, batch_size):
    from trmkit.evaluation import evaluate

    model = trmkit.load(source).model
    with pytest.raises(OptionError) as exc:
        evaluate(model, _split(), None, batch_size=batch_size)
    assert _one_line(exc).startswith(f"batch_size {batch_size!r}: must be an integer >= 1")


# ------------------------------------------------------------------------------- the CLI


def test_solve_on_a_bundle_with_a_partial_ema_is_one_line(bundle):
    _rewrite(bundle / "ema.safetensors", lambda t: [t.pop(k) for k in sorted(t)[1:]])
    result = CliRunner().invoke(cli, ["solve", str(bundle), "1..4.3....2..1.."])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "ema.safetensors" in lines[0]
