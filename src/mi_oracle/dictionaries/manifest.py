"""The resolved manifest of a dictionary set: read once with its format checked, and its layers."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mi_oracle.errors import DictionaryError
from mi_oracle.json_files import read_json

FORMAT = "mi-oracle/dictionary-manifest"
FORMAT_VERSION = 1
REQUIRED = ("set", "kind", "model", "input_hook", "output_hook", "activation", "layers", "encode_layers")


class Manifest(dict):
    """A resolved set's manifest: the JSON document as written, plus typed access to its layers."""

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read and check ``path`` once (see ``read_manifest``)."""
        return read_manifest(path)

    def layer(self, layer: int) -> dict[str, Any]:
        """The resolved record of ``layer`` (a DictionaryError names the resolved ones)."""
        return layer_record(self, layer)

    @property
    def resolved_layers(self) -> list[int]:
        """Every layer resolved (encoded layers and those references read)."""
        return sorted(record["layer"] for record in self["layers"])

    @property
    def encode_layers(self) -> list[int]:
        """The layers the run encodes."""
        return list(self["encode_layers"])


def read_manifest(path: Path) -> Manifest:
    """A manifest ``resolve_set`` wrote; another file, version or a missing key is a DictionaryError."""
    manifest = read_json(path, DictionaryError)
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise DictionaryError(
            f"{path}: format {manifest.get('format')!r} version {manifest.get('format_version')!r}; "
            f"expected {FORMAT!r} version {FORMAT_VERSION} (resolve the set again)"
        )
    missing = [key for key in REQUIRED if key not in manifest]
    if missing:
        raise DictionaryError(f"{path}: keys {missing} are missing; resolve the set again")
    return Manifest(manifest)


def layer_record(manifest: Mapping[str, Any], layer: int) -> dict[str, Any]:
    """The resolved record of ``layer``; a layer that was not resolved is an error listing those that were."""
    for record in manifest["layers"]:
        if record["layer"] == layer:
            return record
    resolved = [record["layer"] for record in manifest["layers"]]
    raise DictionaryError(f"set {manifest['set']}: layer {layer} was not resolved (resolved: {resolved})")
