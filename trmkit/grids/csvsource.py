"""Reading the ``source,question,answer,rating`` CSV layout of Sudoku-Extreme and Maze-Hard.

The Hugging Face datasets (sapientinc/sudoku-extreme, sapientinc/maze-30x30-hard-1k) ship
``train.csv`` and ``test.csv`` with that header, one puzzle per line, fixed-width question
and answer strings and an optional numeric rating. The real Sudoku train file has 3.8M
rows, so rows are read with the csv module into flat byte arrays and validated with numpy;
per-puzzle Python work happens only for the rows kept after filtering.

Which split a file feeds:
- a directory: ``train.csv`` and/or ``test.csv`` (``.gz`` accepted), at least one;
- a single file: a name containing "test" is the test split, anything else is train.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import itertools
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TypeVar

import attrs
import numpy as np

from trmkit import textio
from trmkit.errors import SourceError, first_line
from trmkit.task import Example, RawData, RawPuzzle, Source, SourceRequest

COLUMNS = ("source", "question", "answer", "rating")
SPLITS = ("train", "test")


@attrs.frozen
class CsvTable:
    """The rows of one CSV file; questions/answers as ASCII codes ``uint8[N, width]``."""

    file: str
    split: str
    lines: np.ndarray
    """int64[N] 1-based line number of each row (the header is line 1)."""
    sources: list[str]
    questions: np.ndarray
    answers: np.ndarray
    ratings: np.ndarray
    """float64[N]; NaN where the rating field is empty."""

    def __len__(self) -> int:
        return len(self.lines)

    def take(self, rows: np.ndarray) -> CsvTable:
        """The sub-table of the given row indices (in that order)."""
        return attrs.evolve(
            self,
            lines=self.lines[rows],
            sources=[self.sources[i] for i in rows],
            questions=self.questions[rows],
            answers=self.answers[rows],
            ratings=self.ratings[rows],
        )

    def fail(self, row: int, message: str) -> SourceError:
        """A SourceError naming this file and the line of ``row``."""
        return SourceError(f"{self.file}, line {int(self.lines[row])}: {message}")


def split_files(path: Path) -> list[tuple[str, Path]]:
    """(split, file) pairs for a directory or a single CSV file, train first."""
    path = Path(path)
    if path.is_dir():
        found: list[tuple[str, Path]] = []
        for split in SPLITS:
            for name in (f"{split}.csv", f"{split}.csv.gz"):
                if textio.is_special_file(path / name):  # a FIFO would block the read
                    raise textio.special_file_error(path / name, SourceError, "CSV file")
                if (path / name).is_file():
                    found.append((split, path / name))
                    break
        if not found:
            raise SourceError(
                f"{path}: no train.csv or test.csv (.gz accepted) in this directory; give a "
                f"directory holding them or one CSV file"
            )
        return found
    if textio.is_special_file(path):
        raise textio.special_file_error(path, SourceError, "CSV file")
    if not path.is_file():
        raise SourceError(f"{path}: no such file or directory")
    split = "test" if "test" in path.name.lower() else "train"
    return [(split, path)]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


MAX_ROW_EXTRA = 1 << 16
"""characters a CSV row may hold beyond its question and answer (source, rating, commas)."""


def _rows(path: Path, width: int) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each CSV row, bounded before a row is held (docs/errors.md):
    a row longer than a puzzle row can be (a hostile line of a billion commas, or quoted
    line breaks) and a ``.gz`` unpacking past `trmkit.textio.gzip_unpack_limit` (a
    decompression bomb) are refused."""
    longest = 2 * width + MAX_ROW_EXTRA
    held = total = 0  # characters of the row being read, of the file
    try:
        with open(path, "rb") as raw:
            packed = os.fstat(raw.fileno()).st_size
            gz = path.name.endswith(".gz")
            binary = gzip.GzipFile(fileobj=raw) if gz else raw
            limit = textio.gzip_unpack_limit(packed) if gz else None

            def lines() -> Iterator[str]:
                nonlocal held, total
                for number in itertools.count(1):
                    line = handle.readline(longest + 1)
                    if not line:
                        return
                    held += len(line)
                    total += max(len(line), width)  # a blank line costs a row's time
                    if held > longest:
                        raise SourceError(
                            f"{path}, line {number}: a row longer than {longest} characters; "
                            f"a row is source,question,answer,rating with {width}-character "
                            "questions and answers"
                        )
                    if limit is not None and total > limit:
                        raise textio.gzip_bomb_error(path, packed, SourceError, "CSV file")
                    yield line

            # utf-8-sig: a leading BOM is dropped, as `trmkit.textio` does for every file
            with io.TextIOWrapper(binary, encoding="utf-8-sig", newline="") as handle:
                reader = csv.reader(lines())
                for row in reader:
                    held = 0
                    yield reader.line_num, row
    except (OSError, UnicodeDecodeError, EOFError, csv.Error) as exc:
        raise SourceError(f"{path}: cannot read as (gzip) CSV text: {exc}") from exc


def read_table(path: Path, split: str, width: int) -> CsvTable:
    """Read one CSV file whose questions and answers have exactly ``width`` characters.

    Checks the header, the column count and the field widths (naming file and line);
    character-level checks belong to the task, which knows its alphabet.
    """
    name = str(path)
    rows = _rows(path, width)
    first = next(rows, None)
    if first is None:
        raise SourceError(f"{name}: empty file; expected the header {','.join(COLUMNS)}")
    header = [field.strip().lower() for field in first[1]]
    if sorted(header) != sorted(COLUMNS):
        raise SourceError(
            f"{name}, line 1: header is {','.join(first[1])!r}; expected the columns "
            f"{','.join(COLUMNS)}"
        )
    isrc, iq, ia, ir = (header.index(key) for key in COLUMNS)
    sources: list[str] = []
    chunks: list[tuple[np.ndarray, ...]] = []
    pending: list[tuple[int, str, str, str]] = []
    for line, row in rows:
        if len(row) != 4:
            if not row:
                continue  # a blank line (e.g. trailing newline) carries no puzzle
            raise SourceError(
                f"{name}, line {line}: expected 4 columns ({','.join(COLUMNS)}), got {len(row)}"
            )
        q, a = row[iq], row[ia]
        if len(q) != width or len(a) != width:
            bad, text = ("question", q) if len(q) != width else ("answer", a)
            raise SourceError(
                f"{name}, line {line}: {bad} has {len(text)} characters, expected {width}"
            )
        sources.append(sys.intern(row[isrc]))
        pending.append((line, q, a, row[ir]))
        if len(pending) == CHUNK_ROWS:
            chunks.append(_arrays(name, width, pending))
            pending = []
    chunks.append(_arrays(name, width, pending))
    lines, questions, answers, ratings = (
        np.concatenate(parts) for parts in zip(*chunks, strict=True)
    )
    return CsvTable(name, split, lines, sources, questions, answers, ratings)


CHUNK_ROWS = 1 << 17
"""rows kept as Python strings before they become numpy arrays, so the 3.8M Sudoku-Extreme
rows never sit in memory as millions of string objects at once."""


def _arrays(name: str, width: int, rows: list[tuple[int, str, str, str]]) -> tuple[np.ndarray, ...]:
    """(lines, questions, answers, ratings) of (line, question, answer, rating) ``rows``."""
    lines = [row[0] for row in rows]

    def ascii_codes(field: str, texts: list[str]) -> np.ndarray:
        try:
            data = "".join(texts).encode("ascii")
        except UnicodeEncodeError:
            i, text = next((i, text) for i, text in enumerate(texts) if not text.isascii())
            bad = next(ch for ch in text if not ch.isascii())
            raise SourceError(
                f"{name}, line {lines[i]}: {field} has illegal character {bad!r}"
            ) from None
        return np.frombuffer(data, dtype=np.uint8).reshape(len(texts), width)

    questions = ascii_codes("question", [row[1] for row in rows])
    answers = ascii_codes("answer", [row[2] for row in rows])
    ratings = np.full(len(rows), np.nan)
    for i, (line, _, _, text) in enumerate(rows):
        if text.strip():
            try:
                ratings[i] = float(text)
            except ValueError:
                raise SourceError(
                    f"{name}, line {line}: rating {text.strip()!r} is not a number (or empty)"
                ) from None
    return np.array(lines, dtype=np.int64), questions, answers, ratings


def map_chars(
    table: CsvTable, codes: np.ndarray, field: str, lut: np.ndarray, allowed: str
) -> np.ndarray:
    """ASCII codes -> cell values through ``lut`` (int16[256], -1 = illegal); raises naming
    the first illegal character, its line and position."""
    values = lut[codes]
    bad = np.argwhere(values < 0)
    if len(bad):
        row, pos = int(bad[0, 0]), int(bad[0, 1])
        char = chr(int(codes[row, pos]))
        raise table.fail(
            row, f"{field} has illegal character {char!r} at position {pos} (allowed: {allowed!r})"
        )
    return values


def make_lut(mapping: Mapping[str, int]) -> np.ndarray:
    lut = np.full(256, -1, dtype=np.int16)
    lut[[ord(char) for char in mapping]] = list(mapping.values())
    return lut


def rating_filter(table: CsvTable, min_rating: float | None) -> np.ndarray:
    """Indices of rows kept by ``rating >= min_rating`` (rows without a rating are dropped
    when a minimum is set, since their difficulty is unknown)."""
    if min_rating is None:
        return np.arange(len(table))
    with np.errstate(invalid="ignore"):
        return np.flatnonzero(table.ratings >= min_rating)


def hub_download(repo: str, task: str) -> list[tuple[str, Path]]:
    """Fetch train.csv and test.csv of a Hugging Face dataset -> (split, local path) pairs.

    huggingface_hub is an optional extra (``pip install trmkit[hub]``) imported here only.
    Any failure (not installed, offline, missing file) becomes one SourceError line that
    names the local-path alternative.
    """
    hint = (
        f"download train.csv and test.csv from https://huggingface.co/datasets/{repo} yourself "
        f"and pass the directory holding them: trmkit build --task {task} --source DIR "
        "(trmkit train: --set data.source=DIR)"
    )
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise SourceError(
            f"the 'hub' source needs huggingface_hub (pip install 'trmkit[hub]'); or {hint}"
        ) from None
    paths: list[tuple[str, Path]] = []
    for split in SPLITS:
        try:
            local = hf_hub_download(repo, f"{split}.csv", repo_type="dataset")
        except Exception as exc:  # network, auth and cache errors all end the same way
            reason = first_line(exc, 10_000)
            raise SourceError(
                f"cannot download {split}.csv of {repo} from the Hugging Face hub "
                f"({type(exc).__name__}: {reason}); if offline, {hint}"
            ) from None
        paths.append((split, Path(local)))
    return paths


def parse_float_option(options: Mapping[str, str], key: str) -> float | None:
    if key not in options:
        return None
    try:
        return float(options[key])
    except (TypeError, ValueError):
        raise SourceError(f"option {key}={options[key]!r}: expected a number") from None


MAX_GENERATED = 10_000_000
"""the most puzzles a generator source makes per split (``count``, ``test_count``)."""


Default = TypeVar("Default", int, None)


def parse_int_option(
    options: Mapping[str, str], key: str, default: Default, *, lo: int = 0, hi: int | None = None
) -> int | Default:
    """The integer ``--option key=N`` (``default`` when absent), within ``lo..hi``: a value
    that is not an integer or out of range is one SourceError naming the option."""
    if key not in options:
        return default
    try:
        value = int(options[key])
    except (TypeError, ValueError):
        raise SourceError(f"option {key}={options[key]!r}: expected an integer") from None
    if value < lo:
        raise SourceError(f"option {key}={value}: must be >= {lo}")
    if hi is not None and value > hi:
        raise SourceError(f"option {key}={value}: must be between {lo} and {hi}; lower {key}")
    return value


TableReader = Callable[[list[CsvTable], Mapping[str, str], int], list[RawPuzzle]]
"""(tables, --option values, seed) -> puzzles: a task's validation and filtering of rows."""


def kept_tables(
    tables: list[CsvTable], options: Mapping[str, str], seed: int, *, require_rows: bool = False
) -> Iterator[CsvTable]:
    """Each table cut to the rows that the ``min_rating`` and ``subsample`` options keep (the
    subsample, seeded by ``seed``, thins the train split only). ``require_rows``: a file with
    no rows at all (only a header) is refused."""
    min_rating = parse_float_option(options, "min_rating")
    subsample = parse_int_option(options, "subsample", None)
    rng = np.random.default_rng(seed)
    for table in tables:
        if require_rows and len(table) == 0:
            raise SourceError(
                f"{table.file}: no puzzle rows (only a header?); a {table.split} "
                "CSV needs at least one question,answer row"
            )
        keep = rating_filter(table, min_rating)
        if table.split == "train" and subsample is not None and subsample < len(keep):
            keep = np.sort(rng.choice(keep, size=subsample, replace=False))
        yield table.take(keep)


def table_puzzles(table: CsvTable, questions: np.ndarray, answers: np.ndarray) -> list[RawPuzzle]:
    """One single-example puzzle per row, named ``<split>-<line>``; meta holds the rating
    (None when empty), the CSV ``source`` column and the line number."""
    puzzles = []
    for i, line in enumerate(table.lines.tolist()):
        rating = float(table.ratings[i])
        meta = {
            "rating": None if np.isnan(rating) else rating,
            "source": table.sources[i],
            "line": line,
        }
        example = Example(questions[i], answers[i])
        puzzles.append(RawPuzzle.single(f"{table.split}-{line}", example, table.split, meta))
    return puzzles


def sources(
    read: TableReader,
    width: int,
    noun: str,
    options: Mapping[str, str],
    hub: tuple[str, str, str] | None = None,
) -> dict[str, Source]:
    """The ``csv`` source (``--source DIR_OR_FILE`` holding train.csv / test.csv) and, when
    ``hub`` = (repo, task, sizes) is given, the ``hub`` source that downloads ``repo``'s."""

    def load(files: list[tuple[str, Path]], request: SourceRequest, origin: object) -> RawData:
        tables = [read_table(p, split, width) for split, p in files]
        puzzles = read(tables, request.options, request.seed)
        hashes = {p.name: file_sha256(p) for _, p in files}
        return RawData(puzzles, hashes, f"{len(puzzles)} {noun} from {origin}")

    def load_path(request: SourceRequest) -> RawData:
        if request.path is None:
            raise SourceError("the csv source needs a path: --source DIR_OR_FILE")
        return load(split_files(request.path), request, request.path)

    found = {
        "csv": Source(
            name="csv",
            description="train.csv/test.csv (source,question,answer,rating; .gz ok) in a "
            "directory, or one CSV file (named *test* -> test split, else train)",
            load=load_path,
            kind="path",
            options=dict(options),
        )
    }
    if hub is not None:
        repo, task, sizes = hub
        found["hub"] = Source(
            name="hub",
            description=f"download {repo} ({sizes}) from the Hugging Face hub; needs the 'hub' "
            "extra and a network",
            load=lambda request: load(hub_download(repo, task), request, f"hf:{repo}"),
            kind="download",
            options=dict(options),
        )
    return found
