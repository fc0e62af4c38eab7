"""What every reference kind implements (``ReferenceKind``), and the bars a kind is graded with.

A kind says what its config item must name, which inputs it reads (a model, a dictionary set and
which of its layers), how its document is built, the bars candle-mi's test holds it to (by
device and, for quantized checkpoints, by scheme), whether it needs a GPU, and its schema versions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.tolerance import Tolerance

MADE, NEEDS_GPU = "made", "needs a GPU"  # a reference's status in its provenance record


@dataclass(frozen=True)
class Bars:
    """One kind's acceptance bars: a label, the float tolerance per field (``*``: any other), and
    for quantized checkpoints the per-token logit bar beside an exact top-1."""

    label: str
    tolerances: Mapping[str, Tolerance]
    top1_bar: float | None = None


@dataclass(frozen=True)
class BuildContext:
    """What a kind's ``build`` reads: the model folder and the set's manifest (each when the kind
    reads one), the reference options (device, dtype, threads, seeds_per_layer) and the workdir."""

    model_dir: Path | None
    manifest: Manifest | None
    options: Mapping[str, Any]
    base: Path

    @property
    def settings(self) -> dict[str, Any]:
        return {key: self.options[key] for key in ("device", "dtype", "threads")}


@dataclass(frozen=True)
class Unmade:
    """A reference this machine cannot make: what it lacks, and the record that stands in for it."""

    missing: list[str]
    record: dict[str, Any] = field(default_factory=dict)


class ReferenceKind:
    """One kind of reference candle-mi's tests read. Subclasses set the class attributes and
    implement :meth:`build` and :meth:`bars`."""

    name: str = ""
    schema_versions: tuple[str, ...] = ("0.1.24",)
    required: tuple[str, ...] = ()  # item fields it must name (beyond name and kind)
    allowed: tuple[str, ...] = ()  # item fields it may name
    reads_set: bool = False
    needs_gpu: bool = False  # made only on a CUDA device (quantized)
    # the fields whose presence marks the newest schema of a committed document of this kind
    newest_marker: str | None = None

    def default_schema_version(self) -> str:
        return self.schema_versions[0]

    def schema_version(self, item: ReferenceItem) -> str:
        return item.schema_version or self.default_schema_version()

    def reads_model(self, item: ReferenceItem) -> bool:
        return True

    def item_set(self, item: ReferenceItem) -> str | None:
        """The dictionary set the item reads (None when it reads none)."""
        return item.set if self.reads_set else None

    def check(self, item: ReferenceItem) -> list[str]:
        """What is wrong with the item, one line each (empty: nothing)."""
        problems = []
        given = {
            key for key, value in item.to_json().items() if key not in ("name", "kind", "repo", "revision")
        }
        common = {"model", "test", "schema_version"}
        for key in self.required:
            if getattr(item, key) in (None, (), "", {}):
                problems.append(f"a {self.name} reference names its {key}")
        unknown = sorted(given - common - set(self.required) - set(self.allowed))
        if unknown:
            allowed = sorted(common | set(self.required) | set(self.allowed))
            problems.append(
                f"{', '.join(unknown)}: not a key of a {self.name} reference (allowed: {', '.join(allowed)})"
            )
        if item.schema_version and item.schema_version not in self.schema_versions:
            problems.append(
                f"schema_version {item.schema_version}: a {self.name} reference is written in "
                f"{' or '.join(self.schema_versions)}"
            )
        return problems

    def layers_needed(self, item: ReferenceItem, available: Sequence[int]) -> list[int]:
        """The layers of its set the item reads (empty when it reads no set)."""
        return []

    def unmade(self, item: ReferenceItem, context: BuildContext) -> Unmade | None:
        """Why this machine cannot make the item (None: it can)."""
        return None

    def portable(self, item: ReferenceItem) -> bool:
        """Whether it can be made in portable numerics (on the CPU, the same bytes anywhere)."""
        return True

    def build(self, item: ReferenceItem, context: BuildContext) -> dict[str, Any]:
        raise NotImplementedError

    def bars(self, device: str = "cpu", scheme: str | None = None) -> Bars:
        raise NotImplementedError
