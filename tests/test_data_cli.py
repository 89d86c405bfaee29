"""`trmkit build` and `trmkit data ...` through click, with the toy plugin installed."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from trmkit.cli import cli
from trmkit.data.store import open_store


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def one_line_error(result, *fragments):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error:")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_build_info_export_import(tmp_path, toy_plugin):
    out = tmp_path / "store"
    result = run(
        "build",
        "--task",
        "toy",
        "--out",
        out,
        "--num-aug",
        2,
        "-o",
        "count=20",
        "--seed",
        4,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "train" in result.output and "puzzle identifiers" in result.output
    store = open_store(out, "toy-flip")
    assert store.attrs["seed"] == 4 and store.attrs["options"] == {"count": "20"}
    info = run("data", "info", out)
    assert info.exit_code == 0, info.output
    assert "toy-flip" in info.output and "example 0 of the train split" in info.output
    as_json = json.loads(run("data", "info", out, "--json").output)
    assert as_json["splits"]["train"]["total_groups"] == store["train"].meta.total_groups
    exported = run("data", "export", out, "--out", tmp_path / "official")
    assert exported.exit_code == 0, exported.output
    assert (tmp_path / "official" / "train" / "all__inputs.npy").exists()
    back = run(
        "data", "import", tmp_path / "official", "--task", "toy-flip", "--out", tmp_path / "back"
    )
    assert back.exit_code == 0, back.output
    assert open_store(tmp_path / "back").identifiers() == store.identifiers()


def test_build_from_a_path_source(tmp_path, toy_plugin):
    source = tmp_path / "puzzles.json"
    grid = [[0, 1], [2, 3]]
    flipped = [[1, 0], [3, 2]]
    source.write_text(
        json.dumps(
            {
                "puzzles": [
                    {
                        "name": "p",
                        "train": [{"input": grid, "output": flipped}],
                        "test": [{"input": grid, "output": flipped}],
                    }
                ]
            }
        )
    )
    result = run(
        "build", "--task", "toy-flip", "--source", source, "--out", tmp_path / "s", "--num-aug", 0
    )
    assert result.exit_code == 0, result.output
    assert open_store(tmp_path / "s")["test"].meta.total_examples == 1


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--task", "nope"), ("unknown task 'nope'",)),
        (
            ("--task", "toy-flip", "--source", "/no/such/file.json"),
            ("/no/such/file.json", "no such file"),
        ),
        (("--task", "toy-flip", "-o", "colour=red"), ("no option 'colour'", "count")),
        (("--task", "toy-flip", "-o", "colour"), ("KEY=VALUE",)),
        (("--task", "toy-flip", "--num-aug", "-1"), ("--num-aug -1",)),
        (("--task", "toy-flip", "--subsample", "0"), ("--subsample 0",)),
    ],
)
def test_build_errors_are_one_line(tmp_path, toy_plugin, args, fragments):
    result = run("build", *args, "--out", tmp_path / "s")
    one_line_error(result, *fragments)
    assert not (tmp_path / "s").exists()
    assert list(tmp_path.iterdir()) == []


def test_unreadable_source_and_existing_out(tmp_path, toy_plugin):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    one_line_error(
        run("build", "--task", "toy-flip", "--source", bad, "--out", tmp_path / "s"),
        str(bad),
        "not a toy puzzle file",
    )
    assert run("build", "--task", "toy-flip", "--out", tmp_path / "s").exit_code == 0
    one_line_error(
        run("build", "--task", "toy-flip", "--out", tmp_path / "s"), "already exists", "--force"
    )
    assert run("build", "--task", "toy-flip", "--out", tmp_path / "s", "--force").exit_code == 0


def test_data_commands_refuse_bad_stores(tmp_path, toy_plugin):
    one_line_error(run("data", "info", tmp_path / "missing"), "no such dataset store")
    (tmp_path / "plain").mkdir()
    one_line_error(run("data", "info", tmp_path / "plain"), "not a trmkit dataset store")
    one_line_error(
        run("data", "export", tmp_path / "missing", "--out", tmp_path / "o"),
        "no such dataset store",
    )
    one_line_error(
        run("data", "import", tmp_path / "plain", "--task", "toy-flip", "--out", tmp_path / "o"),
        "not an official dataset directory",
    )
    one_line_error(
        run("data", "import", tmp_path / "plain", "--task", "nope", "--out", tmp_path / "o"),
        "unknown task 'nope'",
    )


def test_info_without_the_task_installed(tmp_path, toy):
    from trmkit.data.build import build_dataset

    build_dataset(toy.make_task(), tmp_path / "s", progress=False)
    result = run("data", "info", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert "toy-flip" in result.output and "not installed" in result.output
