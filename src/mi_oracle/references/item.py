"""One entry of ``references.items``: a frozen, typed reference item (what ``Manifest`` is to a set).

The config's entry goes in through :meth:`ReferenceItem.from_json`; every reader takes its
attributes, never the raw mapping. :meth:`to_json` gives back the entry (with its model's
repository and revision filled in), for params and for the job that builds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mi_oracle.errors import ConfigError


@dataclass(frozen=True)
class ReferenceItem:
    """A reference to make: its file name, its kind, and what that kind reads."""

    name: str
    kind: str
    model: str | None = None  # a name under models
    set: str | None = None  # a name under dictionaries
    test: str = ""  # candle-mi's tests/<test>.rs that reads it
    schema_version: str | None = None  # None: the kind's default
    family: str | None = None  # forward families (references/families.py); None: by model_type
    scheme: str | None = None  # quantized: bnb-nf4, awq or gptq
    prompts: tuple[str, ...] = ()
    prompt: str | None = None
    long_prompt: str | None = None
    layer: int | None = None
    layers: tuple[int, ...] = ()
    oracle_release: str | None = None
    oracle_sae_ids: Mapping[str, str] = field(default_factory=dict)
    curation_repo: str | None = None
    repo: str = ""  # the model's hub repository, filled in from models
    revision: str = ""  # the model's configured revision

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> ReferenceItem:
        """The item an entry describes; an unknown key is a ConfigError naming it."""
        known = {spec.name for spec in fields(cls)}
        unknown = sorted(set(entry) - known)
        if unknown:
            raise ConfigError(
                f"references.items[{entry.get('name')}]: unknown key(s) {', '.join(unknown)} "
                f"(allowed: {', '.join(sorted(known))})"
            )
        values = dict(entry)
        for key in ("prompts", "layers"):
            if key in values:
                values[key] = tuple(values[key])
        if "oracle_sae_ids" in values:
            values["oracle_sae_ids"] = {str(k): v for k, v in sorted(values["oracle_sae_ids"].items())}
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """The entry, keys in field order, defaults left out."""
        document: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            default = spec.default_factory() if callable(spec.default_factory) else spec.default
            if spec.name in ("name", "kind") or value != default:
                document[spec.name] = list(value) if isinstance(value, tuple) else value
                if isinstance(value, Mapping):
                    document[spec.name] = dict(value)
        return document


@dataclass(frozen=True)
class ReferenceFile:
    """A reference as the workflow made it: its item's name, kind and set, and its file."""

    name: str
    kind: str
    set: str | None
    path: str

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> ReferenceFile:
        return cls(**entry)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "set": self.set, "path": self.path}
