"""Bundles on the Hugging Face hub: ``hf://OWNER/REPO[@REVISION][/PATH]`` read wherever a
checkpoint path is (`trmkit.checkpoint.bundle.resolve_bundle`), and `push` of a run's
bundle with a generated model card (docs/training.md, "Sharing a model on the Hub").

Downloads go through ``huggingface_hub.snapshot_download`` into the hub's own cache
(``HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``), so a repository fetched once
loads offline. Before any network call one ~3 s TCP probe (`trmkit.network.probe`) decides:
reachable, the client downloads (or checks its cache is current); unreachable or
``HF_HUB_OFFLINE`` set, only the cache is read, and a repository not in it is one
`CheckpointError` line at once, not the client's retries.

A pushed repository holds the bundle's loadable files byte for byte (manifest.json,
model.safetensors, ema.safetensors and the puzzle-id table when the manifest has them; not
the resume state), so a download is a valid bundle, plus README.md (`model_card`, a pure
function of the manifest and the run's evaluation reports) and the run's curves.png.
huggingface_hub is the optional extra ``trmkit[hub]``, imported only here, only when used.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeGuard

import attrs

from trmkit import network
from trmkit.checkpoint.manifest import Manifest
from trmkit.checkpoint.puzzle_ids import NAMES_FILE, TABLE_FILE
from trmkit.errors import CheckpointError, ConfigError, TrmkitError, first_line

HUB_SCHEME = "hf://"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
"""one part of a repository id (owner or name), or a revision, as the hub accepts it."""
_FORM = "hf://OWNER/REPO[@REVISION][/PATH]"
CARD = "README.md"
CURVES = "curves.png"
PUSH_REPLACES = ("*.safetensors", "*.json", CARD, CURVES)
"""files of an earlier push that a push deletes unless it uploads them again: a stale
ema.safetensors beside a manifest without EMA would make the download an invalid bundle."""


@attrs.frozen
class HubSource:
    """A parsed ``hf://`` reference: ``repo`` is OWNER/REPO, ``revision`` a branch, tag or
    commit (None: main), ``path`` a folder inside the repository ("" for its root)."""

    text: str
    repo: str
    revision: str | None = None
    path: str = ""


def is_hub(source: object) -> TypeGuard[str]:
    """``source`` is a string naming a hub repository (a Path never is: pathlib folds
    ``hf://`` into ``hf:/``)."""
    return isinstance(source, str) and source.startswith(HUB_SCHEME)


def parse_hub(text: str) -> HubSource:
    """``hf://OWNER/REPO[@REVISION][/PATH]`` -> `HubSource`; anything else one line."""
    rest = text[len(HUB_SCHEME) :] if text.startswith(HUB_SCHEME) else text
    parts = rest.strip("/").split("/")
    bad = CheckpointError(f"{text}: not a hub repository; expected {_FORM}")
    if len(parts) < 2:
        raise bad
    owner, name, path = parts[0], parts[1], "/".join(parts[2:])
    name, at, revision = name.partition("@")
    if not (_NAME.match(owner) and _NAME.match(name)) or ".." in path.split("/"):
        raise bad
    if at and not _NAME.match(revision):
        raise CheckpointError(
            f"{text}: revision {revision!r} is not a branch, tag or commit name; expected {_FORM}"
        )
    return HubSource(text=text, repo=f"{owner}/{name}", revision=revision or None, path=path)


def _hub_client(what: str) -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise CheckpointError(f"{what}: needs huggingface_hub; pip install 'trmkit[hub]'") from None
    return huggingface_hub


def _unreachable() -> str | None:
    """Why the hub cannot be used now (``HF_HUB_OFFLINE`` or a failed probe), or None."""
    if network.hub_offline_mode():
        return "HF_HUB_OFFLINE is set"
    host, port = network.hub_endpoint()
    reason = network.probe(host, port)
    return None if reason is None else f"cannot reach {host} ({reason}): this machine looks offline"


def fetch_hub(text: str) -> Path:
    """The local folder of ``hf://OWNER/REPO[@REVISION][/PATH]``: downloaded into the hub
    cache when the hub is reachable, else read from the cache; one line when neither."""
    source = parse_hub(text)
    hub = _hub_client(text)
    offline = _unreachable()
    patterns = [f"{source.path}/*"] if source.path else None
    try:
        local = hub.snapshot_download(
            repo_id=source.repo,
            revision=source.revision,
            allow_patterns=patterns,
            local_files_only=offline is not None,
            etag_timeout=5,
        )
    except Exception as exc:  # the client raises many types; all mean "not fetched"
        if offline is not None:
            raise CheckpointError(
                f"{text}: not in the local hub cache and {offline}; connect (unset "
                "HF_HUB_OFFLINE), or download the repository elsewhere and pass its folder"
            ) from None
        raise CheckpointError(
            f"{text}: download failed ({first_line(exc)}); check the repository and revision "
            "names (a private repository needs HF_TOKEN or `hf auth login`)"
        ) from None
    path = Path(local) / source.path
    if not path.exists():
        raise CheckpointError(f"{text}: the repository has no {source.path!r}; check the path")
    return path


# ------------------------------------------------------------------------------ model card


def bundle_files(bundle: Path, manifest: Manifest) -> list[Path]:
    """The files of ``bundle`` a download needs to load it (manifest, the weight files the
    manifest names, the puzzle-id table when there is one); not the resume state."""
    from trmkit.checkpoint.bundle import weight_files

    files = [bundle / "manifest.json", *weight_files(manifest, bundle).values()]
    return files + [bundle / n for n in (TABLE_FILE, NAMES_FILE) if (bundle / n).is_file()]


def run_evaluations(run_dir: Path | None, step: int) -> list[tuple[str, dict[str, Any]]]:
    """(report directory name, metrics) of every evaluation of step ``step`` in
    ``<run>/eval`` (the trainer's ``step_N`` and `trmkit eval`'s ``step_N-...``), by name."""
    if run_dir is None or not (run_dir / "eval").is_dir():
        return []
    mine = re.compile(rf"^step_{step}(?!\d)")
    found = []
    for report in sorted((run_dir / "eval").iterdir()):
        file = report / "metrics.json"
        if mine.match(report.name) and file.is_file():
            try:
                metrics = json.loads(file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a damaged report is left out of the card, not guessed at
            if isinstance(metrics, dict) and _is_number(metrics.get("exact_accuracy")):
                found.append((report.name, metrics))
    return found


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number(value: Any, digits: int = 4) -> str:
    if not _is_number(value):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _evaluation_row(name: str, m: Mapping[str, Any]) -> str:
    from trmkit.stats import exact_interval_fields

    ci = exact_interval_fields(m)
    interval = (
        f"[{ci['exact_accuracy_ci95_low']:.4f}, {ci['exact_accuracy_ci95_high']:.4f}]"
        if ci
        else "-"
    )
    samples = m.get("samples", 1)
    select = m.get("select", "-") if isinstance(samples, int) and samples > 1 else "-"
    cells = [
        f"`{name}`",
        _number(m.get("exact_accuracy")),
        interval,
        _number(m.get("accuracy")),
        _number(m.get("count")),
        _number(m.get("steps")),
        str(m.get("halt", "-")),
        _number(samples),
        str(select),
        _number(m.get("noise"), 2),
    ]
    return "| " + " | ".join(cells) + " |"


def _recipe_text(recipe: Mapping[str, Any]) -> tuple[str, str]:
    """(fence tag, text): the recipe as TOML `trmkit train --recipe` reads, or, for a
    manifest whose recipe is not a trmkit recipe (an imported official run), as JSON."""
    from trmkit.config import recipe_from_dict, recipe_to_toml

    try:
        return "toml", recipe_to_toml(recipe_from_dict(recipe, "manifest recipe")).strip()
    except (ConfigError, TrmkitError, TypeError, ValueError, KeyError):
        return "json", json.dumps(dict(recipe), indent=1, default=str)


def model_card(
    manifest: Manifest,
    *,
    repo: str,
    parameters: int,
    evaluations: Sequence[tuple[str, Mapping[str, Any]]] = (),
    curves: bool = False,
) -> str:
    """README.md of a pushed bundle: YAML front matter (library_name, tags), then task,
    architecture, parameters, the measured accuracy with its evaluation settings (each of
    ``evaluations``, else the manifest's last evaluation), the curves image, how to load
    it, and the recipe. A pure function: nothing is read or written."""
    task, model = manifest.task, manifest.model
    tags = ["trmkit", "recursive-reasoning", task.name, model.name]
    front = ["---", "library_name: trmkit", "tags:", *(f"- {t}" for t in dict.fromkeys(tags))]
    store = manifest.dataset.store
    data = store.get("source_description") or store.get("source") or "-"
    if store.get("source") == "official":
        data = f"imported from an official run ({store.get('imported_from', '-')})"
    weights = "EMA (`ema.safetensors`; raw in `model.safetensors`)" if manifest.ema else "raw"
    lines = [
        *front,
        "---",
        "",
        f"# {repo}",
        "",
        f"A `{model.name}` recursive-reasoning model for the trmkit task `{task.name}`, "
        f"step {manifest.step} of its training.",
        "",
        "| | |",
        "|---|---|",
        f"| task | `{task.name}` (version {task.version}) |",
        f"| architecture | `{model.name}` |",
        f"| trainable parameters | {parameters:,} |",
        f"| training step | {manifest.step} |",
        f"| weights loaded | {weights} |",
        f"| sequence length, vocabulary | {manifest.dataset.seq_len}, "
        f"{manifest.dataset.vocab_size} |",
        f"| puzzle identifiers | {manifest.dataset.num_puzzle_identifiers} |",
        f"| training data | {str(data).replace('|', '/')} |",
        f"| trmkit version | {manifest.trmkit_version} |",
        "",
        "## Use it",
        "",
        "```bash",
        "pip install 'trmkit[hub]'",
        f"trmkit solve hf://{repo} puzzle.txt",
        f"trmkit eval hf://{repo} --data DIR   # DIR: trmkit build --task {task.name} --out DIR",
        "```",
        "",
        "```python",
        "import trmkit",
        "",
        f'model = trmkit.load("hf://{repo}")   # or hf://{repo}@REVISION',
        'answers = model.solve("puzzle.txt")',
        "```",
        "",
        "## Measured accuracy",
        "",
    ]
    rows = list(evaluations)
    if not rows and _is_number(manifest.eval.get("exact_accuracy")):
        rows = [("last evaluation in training", manifest.eval)]
    if rows:
        lines += [
            "Exact accuracy (the whole grid right) on the test split of the task's data, with "
            "its Wilson 95% interval, token accuracy, and the settings it was measured with: "
            "puzzles, supervision steps, halting policy, samples per puzzle, selection rule, "
            "noise.",
            "",
            "| evaluation | exact accuracy | 95% interval | token accuracy | puzzles | steps "
            "| halting | samples | selection | noise |",
            "|---|---|---|---|---|---|---|---|---|---|",
            *(_evaluation_row(name, m) for name, m in rows),
        ]
    else:
        lines.append("Not measured: the run recorded no evaluation of this step.")
    if curves:
        lines += ["", "## Training curves", "", f"![training curves]({CURVES})"]
    fence, recipe = _recipe_text(manifest.recipe)
    lines += [
        "",
        "## Architecture",
        "",
        f"`{model.name}`, configured as:",
        "",
        "```json",
        json.dumps(model.config, indent=1, default=str),
        "```",
        "",
        "## Recipe",
        "",
        f"```{fence}",
        recipe,
        "```",
        "",
        "## Files",
        "",
        "`manifest.json` and the `*.safetensors` files are the trmkit checkpoint bundle as "
        "written by training (weights only; no pickle). A download of this repository is a "
        "bundle: `trmkit checkpoint info hf://" + repo + "` describes it.",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ push


@attrs.frozen
class PushResult:
    repo: str
    revision: str | None
    bundle: Path
    files: tuple[str, ...]
    """the names uploaded, sorted."""
    url: str
    """the commit's URL as the hub reported it."""


def push(
    source: str | os.PathLike[str],
    repo: str,
    *,
    revision: str | None = None,
    private: bool = False,
    message: str | None = None,
    token: str | None = None,
) -> PushResult:
    """Upload the bundle of ``source`` (a bundle, or a run: its newest bundle) to the hub
    repository ``repo`` (OWNER/REPO, created when missing; ``revision`` a branch, created
    from main when missing) with its model card; the bundle itself is not touched."""
    from trmkit.checkpoint.bundle import load_bundle, resolve_bundle
    from trmkit.models import count_parameters

    target = parse_hub(repo if is_hub(repo) else HUB_SCHEME + repo)
    if target.revision or target.path:
        raise CheckpointError(
            f"{repo}: give the repository as OWNER/REPO and the branch with --revision"
        )
    if revision is not None and not _NAME.match(revision):
        raise CheckpointError(f"--revision {revision!r}: not a branch name; e.g. --revision v1")
    if is_hub(source):
        raise CheckpointError(f"{source}: already on the hub; push a local run or bundle")
    bundle = resolve_bundle(source)
    loaded = load_bundle(bundle)  # only a bundle that loads is shared
    # a bundle of a run (<run>/checkpoints/step_N) gets the run's evaluations and curves
    run_dir = bundle.parent.parent if bundle.parent.name == "checkpoints" else None
    curves = run_dir / CURVES if run_dir is not None and (run_dir / CURVES).is_file() else None
    card = model_card(
        loaded.manifest,
        repo=target.repo,
        parameters=count_parameters(loaded.model),
        evaluations=run_evaluations(run_dir, loaded.manifest.step),
        curves=curves is not None,
    )
    hub = _hub_client(f"push to {target.text}")
    offline = _unreachable()
    if offline is not None:
        raise CheckpointError(
            f"push to {target.text}: {offline}; connect to upload (nothing was sent)"
        )
    with tempfile.TemporaryDirectory(prefix="trmkit-push-") as tmp:
        folder = Path(tmp)
        for file in bundle_files(bundle, loaded.manifest):
            shutil.copyfile(file, folder / file.name)
        if curves is not None:
            shutil.copyfile(curves, folder / CURVES)
        (folder / CARD).write_text(card, encoding="utf-8")
        names = tuple(sorted(p.name for p in folder.iterdir()))
        api = hub.HfApi(token=token)
        step = f"step {loaded.manifest.step}"
        try:
            api.create_repo(target.repo, private=private, exist_ok=True, repo_type="model")
            if revision is not None:
                api.create_branch(target.repo, branch=revision, exist_ok=True)
            info = api.upload_folder(
                repo_id=target.repo,
                folder_path=folder,
                revision=revision,
                commit_message=message
                or f"trmkit push: {loaded.manifest.task.name} {loaded.manifest.model.name} {step}",
                delete_patterns=list(PUSH_REPLACES),
            )
        except Exception as exc:  # the client raises many types; all mean "not uploaded"
            raise CheckpointError(
                f"push to {target.text}: {first_line(exc)}; check the repository name and the "
                "token (HF_TOKEN, --token or `hf auth login`; it needs write access)"
            ) from None
    return PushResult(
        repo=target.repo,
        revision=revision,
        bundle=bundle,
        files=names,
        url=str(info.commit_url),
    )


__all__ = [
    "CARD",
    "HUB_SCHEME",
    "HubSource",
    "PushResult",
    "bundle_files",
    "fetch_hub",
    "is_hub",
    "model_card",
    "parse_hub",
    "push",
    "run_evaluations",
]
