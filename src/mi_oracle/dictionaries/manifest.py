"""The resolved manifest of a dictionary set, typed: resolution builds it, every stage reads it.

``Manifest`` and ``LayerRecord`` are frozen; ``Manifest.read`` checks the file's format and keys
once, and ``to_json`` is the document ``resolve_set`` writes (the file format stays JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mi_oracle.errors import DictionaryError
from mi_oracle.json_files import read_json

if TYPE_CHECKING:
    from mi_oracle.formats.base import DictionaryFormat

FORMAT = "mi-oracle/dictionary-manifest"
FORMAT_VERSION = 1
REQUIRED = ("set", "kind", "model", "input_hook", "output_hook", "activation", "layers", "encode_layers")
_HUB_KEYS = ("repo", "path", "requested_revision", "resolved_revision")
_UNIFORM = ("schema", "d_model", "d_sae")  # written when every resolved layer agrees


@dataclass(frozen=True)
class DictionaryFile:
    """One file of a layer: where it came from, where it lies (relative to the workdir), its hash.

    Hub files also carry ``repo``, ``path`` and both revisions; local files leave them None.
    """

    source: str
    local_path: str
    size: int
    sha256: str
    repo: str | None = None
    path: str | None = None
    requested_revision: str | None = None
    resolved_revision: str | None = None

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> DictionaryFile:
        return cls(
            **{key: record[key] for key in ("source", "local_path", "size", "sha256")},
            **{key: record.get(key) for key in _HUB_KEYS},
        )

    def to_json(self) -> dict[str, Any]:
        document = {
            "source": self.source,
            "local_path": self.local_path,
            "size": self.size,
            "sha256": self.sha256,
        }
        document.update({key: getattr(self, key) for key in _HUB_KEYS if getattr(self, key) is not None})
        return document


@dataclass(frozen=True)
class LayerRecord:
    """One resolved layer: its files, schema, sizes, format details and tensors (shape, dtype)."""

    layer: int
    files: tuple[DictionaryFile, ...]
    schema: str
    d_model: int
    d_sae: int
    input_hook: str
    output_hook: str
    details: Mapping[str, Any] = field(default_factory=dict)
    tensors: Mapping[str, Any] = field(default_factory=dict)

    @property
    def format(self) -> DictionaryFormat:
        """The registered format of this layer's schema."""
        from mi_oracle.formats import format_of

        return format_of(self.schema)

    @classmethod
    def from_json(cls, record: Mapping[str, Any]) -> LayerRecord:
        return cls(
            layer=int(record["layer"]),
            files=tuple(DictionaryFile.from_json(file) for file in record["files"]),
            schema=record["schema"],
            d_model=int(record["d_model"]),
            d_sae=int(record["d_sae"]),
            input_hook=record["input_hook"],
            output_hook=record["output_hook"],
            details=dict(record.get("details") or {}),
            tensors=dict(record.get("tensors") or {}),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "files": [file.to_json() for file in self.files],
            "schema": self.schema,
            "d_model": self.d_model,
            "d_sae": self.d_sae,
            "details": dict(self.details),
            "tensors": dict(self.tensors),
            "input_hook": self.input_hook,
            "output_hook": self.output_hook,
        }


@dataclass(frozen=True)
class Manifest:
    """A resolved set: its identity, model, hooks, activation, every listed layer and those resolved."""

    name: str
    kind: str
    synthetic: bool
    model: Mapping[str, Any]
    input_hook: str
    output_hook: str
    activation: Mapping[str, Any]  # {"kind": ..., "source": "curation YAML" | "weights"}
    layers: tuple[LayerRecord, ...]
    encode_layers: tuple[int, ...]
    available_layers: tuple[Mapping[str, Any], ...] = ()  # {"layer", "source"} for every listed layer
    model_name: str | None = None
    hooks_as_written: Mapping[str, str] = field(default_factory=dict)
    curation: Mapping[str, Any] | None = None
    k: int | None = None
    environment: Mapping[str, Any] = field(default_factory=dict)
    synthetic_provenance: Mapping[str, Any] | None = None

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read and check ``path`` once (see ``read_manifest``)."""
        return read_manifest(path)

    def layer(self, layer: int) -> LayerRecord:
        """The resolved record of ``layer`` (a DictionaryError names the resolved ones)."""
        for record in self.layers:
            if record.layer == layer:
                return record
        raise DictionaryError(
            f"set {self.name}: layer {layer} was not resolved (resolved: {self.resolved_layers})"
        )

    @property
    def resolved_layers(self) -> list[int]:
        """Every layer resolved (encoded layers and those references read)."""
        return sorted(record.layer for record in self.layers)

    @property
    def listed_layers(self) -> list[int]:
        """Every layer the set lists, resolved or not."""
        return [int(entry["layer"]) for entry in self.available_layers]

    @property
    def activation_kind(self) -> str:
        return self.activation["kind"]

    @property
    def target_hook(self) -> str:
        """What the set's output is compared with: its input for an SAE, else its output hook."""
        return self.input_hook if self.kind == "sae" else self.output_hook

    @property
    def schemas(self) -> list[str]:
        """The schemas of the resolved layers, sorted and unique."""
        return sorted({record.schema for record in self.layers})

    @property
    def curation_source(self) -> str | None:
        return (self.curation or {}).get("source")

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Manifest:
        return cls(
            name=document["set"],
            kind=document["kind"],
            synthetic=bool(document.get("synthetic")),
            model=dict(document["model"]),
            input_hook=document["input_hook"],
            output_hook=document["output_hook"],
            activation=dict(document["activation"]),
            layers=tuple(LayerRecord.from_json(record) for record in document["layers"]),
            encode_layers=tuple(document["encode_layers"]),
            available_layers=tuple(dict(entry) for entry in document.get("available_layers", ())),
            model_name=document.get("model_name"),
            hooks_as_written=dict(document.get("hooks_as_written") or {}),
            curation=document.get("curation"),
            k=document.get("k"),
            environment=dict(document.get("environment") or {}),
            synthetic_provenance=document.get("synthetic_provenance"),
        )

    def to_json(self) -> dict[str, Any]:
        """The manifest file's document."""
        layers = [record.to_json() for record in self.layers]
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "set": self.name,
            "kind": self.kind,
            "synthetic": self.synthetic,
            "model": dict(self.model),
            "curation": self.curation,
            "model_name": self.model_name,
            "input_hook": self.input_hook,
            "output_hook": self.output_hook,
            "hooks_as_written": dict(self.hooks_as_written),
            "activation": dict(self.activation),
            **{key: layers[0][key] for key in _UNIFORM if layers and len({str(r[key]) for r in layers}) == 1},
            "k": self.k,
            "available_layers": [dict(entry) for entry in self.available_layers],
            "encode_layers": list(self.encode_layers),
            "layers": layers,
            "environment": dict(self.environment),
        }
        if self.synthetic_provenance is not None:
            document["synthetic_provenance"] = self.synthetic_provenance
        return document


def read_manifest(path: Path) -> Manifest:
    """A manifest ``resolve_set`` wrote; another file, version or a missing key is a DictionaryError."""
    document = read_json(path, DictionaryError)
    if document.get("format") != FORMAT or document.get("format_version") != FORMAT_VERSION:
        raise DictionaryError(
            f"{path}: format {document.get('format')!r} version {document.get('format_version')!r}; "
            f"expected {FORMAT!r} version {FORMAT_VERSION} (resolve the set again)"
        )
    missing = [key for key in REQUIRED if key not in document]
    if missing:
        raise DictionaryError(f"{path}: keys {missing} are missing; resolve the set again")
    try:
        return Manifest.from_json(document)
    except (KeyError, TypeError, ValueError) as error:
        raise DictionaryError(
            f"{path}: a layer or file record is malformed ({error!r}); resolve the set again"
        ) from error
