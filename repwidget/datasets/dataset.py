"""A labelled dataset of texts: classes or numbers, optional groups, an optional out-of-distribution variant."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from ..texts import preview
from .split import held_out

KINDS = ("binary", "multiclass", "continuous")
#: numeric labels with more distinct values than this are read as a continuous target when ``kind`` is not given
MAX_CLASSES = 20
ZSTD_INSTALL = "pip install zstandard"


@dataclass(frozen=True)
class Dataset:
    """Texts with one label each: class names (``kind`` ``binary`` or ``multiclass``) or numbers (``continuous``).

    ``groups`` (one hashable per text, optional) keeps related texts on one side of :meth:`split`; ``ood`` is an
    out-of-distribution variant of the same task (other languages, other names), for evaluation only.
    """

    name: str
    texts: list[str] = field(repr=False)
    labels: list[Any] = field(repr=False)
    kind: str
    groups: list[Any] | None = field(default=None, repr=False)
    ood: Dataset | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r:.40}")
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{len(self.texts)} texts but {len(self.labels)} labels; give one label per text")
        if self.groups is not None and len(self.groups) != len(self.texts):
            raise ValueError(f"{len(self.groups)} groups for {len(self.texts)} texts; give one group per text")
        for index, text in enumerate(self.texts):
            if not isinstance(text, str) or not text:
                raise TypeError(f"text {index} ({preview(text)}) must be a non-empty string")

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:
        what = f"{len(self.classes)} classes" if self.kind != "continuous" else "a continuous target"
        ood = f", ood={len(self.ood)} texts" if self.ood is not None else ""
        return f"Dataset({self.name!r}, {len(self)} texts, {self.kind}: {what}{ood})"

    @property
    def classes(self) -> list[str]:
        """The class names in sorted order (the order of a probe's classes); empty for a continuous target."""
        return [] if self.kind == "continuous" else sorted(set(self.labels))

    def pairs(self) -> list[tuple[str, Any]]:
        """``(text, label)`` for every example."""
        return list(zip(self.texts, self.labels, strict=True))

    def subset(self, indices: Iterable[int], name: str | None = None) -> Dataset:
        """The examples at ``indices`` (in that order), with the same ``ood`` variant."""
        indices = [int(i) for i in indices]
        return replace(
            self,
            name=name or self.name,
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            groups=[self.groups[i] for i in indices] if self.groups is not None else None,
        )

    def sample(self, n: int, seed: int = 0) -> Dataset:
        """A seeded random ``n`` of the examples (all of them, shuffled, if there are fewer)."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n must be a positive number of examples, got {n!r:.40}")
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n]
        return self.subset(order.tolist())

    def split(
        self, test: float = 0.2, seed: int = 0, group_by: Sequence[Any] | Callable[[str], Any] | None = None
    ) -> tuple[Dataset, Dataset]:
        """``(train, test)``: a seeded ``test`` fraction held out. With groups (``group_by``: one group per
        example, or a function of the text; by default the dataset's own ``groups`` if it has any) whole
        groups are held out, so that no group is on both sides."""
        groups = self.groups if group_by is None else group_by
        if callable(groups):
            groups = [groups(text) for text in self.texts]
        test_rows, train_rows = held_out(len(self), test, seed, groups)
        return self.subset(train_rows.tolist(), f"{self.name} (train)"), self.subset(
            test_rows.tolist(), f"{self.name} (test)"
        )


def infer_kind(labels: Sequence[Any]) -> str:
    """``binary`` for two distinct labels; ``continuous`` for numbers with more than :data:`MAX_CLASSES`
    distinct values (or any non-integer float); ``multiclass`` otherwise."""
    distinct = set(labels)
    if len(distinct) < 2:
        raise ValueError(f"all {len(labels)} labels are {next(iter(distinct), None)!r}; a task needs two or more")
    if len(distinct) == 2:
        return "binary"
    numbers = [_number(label) for label in distinct]
    if all(x is not None for x in numbers) and (
        len(distinct) > MAX_CLASSES or any(isinstance(label, float) and not label.is_integer() for label in distinct)
    ):
        return "continuous"
    return "multiclass"


def _number(label: Any) -> float | None:
    if isinstance(label, bool):
        return None
    try:
        return float(label)
    except (TypeError, ValueError):
        return None


def normalise_labels(labels: Sequence[Any], kind: str, where: str) -> list[Any]:
    """Labels as a probe reads them: class names as strings, continuous targets as floats."""
    if kind != "continuous":
        return [str(label) for label in labels]
    out = []
    for index, label in enumerate(labels):
        value = _number(label)
        if value is None or value != value:
            raise ValueError(f"{where}: label {index} ({label!r:.40}) is not a number, but the task is continuous")
        out.append(value)
    return out


def from_pairs(
    pairs: Iterable[tuple[str, Any]], name: str = "pairs", kind: str | None = None, groups: Sequence[Any] | None = None
) -> Dataset:
    """A :class:`Dataset` from ``(text, label)`` pairs; ``kind`` inferred from the labels when not given
    (see :func:`infer_kind`)."""
    texts, labels = [], []
    for index, pair in enumerate(pairs):
        try:
            text, label = pair
        except (TypeError, ValueError):
            raise ValueError(f"pair {index} ({preview(pair)}) must be a (text, label) pair") from None
        texts.append(text)
        labels.append(label)
    kind = kind or infer_kind(labels)
    return Dataset(name, texts, normalise_labels(labels, kind, name), kind, list(groups) if groups else None)


def read_bytes(path: Path) -> bytes:
    """The bytes of a file, plain or zstd-compressed (``.zst``, which needs ``zstandard``)."""
    if path.suffix != ".zst":
        return path.read_bytes()
    try:
        import zstandard
    except ImportError:
        raise ImportError(f"reading {path.name} needs the zstandard package: {ZSTD_INSTALL}") from None
    with path.open("rb") as file:
        return zstandard.ZstdDecompressor().stream_reader(file).read()


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header (UTF-8), plain or zstd-compressed."""
    return list(csv.DictReader(io.StringIO(read_bytes(path).decode("utf-8"))))


_RECORD = re.compile(rb'(?:[^"\n]+|"[^"]*")*\n')  # a CSV record: plain text or quoted fields (line breaks inside)


def count_rows(data: bytes) -> int:
    """The rows under the header of CSV ``data``, counted without parsing the fields."""
    records = sum(1 for _ in _RECORD.finditer(data)) + (not data.endswith(b"\n") and data.strip() != b"")
    return max(0, records - 1)


def from_csv(
    path: str | Path,
    text: str = "prompt",
    label: str = "target",
    group: str | None = None,
    kind: str | None = None,
    name: str | None = None,
) -> Dataset:
    """A :class:`Dataset` from a CSV file with a header (plain or ``.zst``): the texts in column ``text``,
    the labels in ``label``, the groups (optional) in ``group``; ``kind`` inferred when not given."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CSV file at {path}")
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path} has no rows under its header")
    for column in (text, label, group):
        if column is not None and column not in rows[0]:
            raise ValueError(f"{path} has no column {column!r}; its columns are {', '.join(rows[0])}")
    labels = [row[label] for row in rows]
    kind = kind or infer_kind(labels)
    groups = [row[group] for row in rows] if group is not None else None
    texts = [row[text] for row in rows]
    return Dataset(name or path.name.split(".")[0], texts, normalise_labels(labels, kind, str(path)), kind, groups)
