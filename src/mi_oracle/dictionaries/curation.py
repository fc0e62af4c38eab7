"""Parse a curation YAML (circuit-tracer's transcoder-set config) or an SAE set into a SetSpec.

Keys: ``model_name``; ``model_kind`` (``transcoder_set``, the default, ``cross_layer_transcoder``,
or mi-oracle's ``sae``); ``feature_input_hook`` / ``feature_output_hook`` (TransformerLens names);
optional ``activation`` (``relu``, ``topk`` with ``k``; absent: JumpReLU when the weights carry a
threshold); optional ``transcoders``: a list whose index is the layer (``hf://`` URIs or local
paths) or a list of ``{id, layer, filepath}``. Without ``transcoders`` the weights are the files
beside the YAML: ``layer_*.safetensors``, or a CLT's ``W_enc_*`` / ``W_dec_*``. Any other
key is refused (circuit-tracer's ``scan`` is accepted and ignored).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mi_oracle.errors import DictionaryError
from mi_oracle.hook_points import UnsupportedModelError, project_hook

KINDS = ("transcoder_set", "cross_layer_transcoder", "sae")
ACTIVATIONS = ("relu", "topk")
# ``scan`` is circuit-tracer's Neuronpedia scan name: accepted, not used.
KEYS = (
    "model_name",
    "model_kind",
    "feature_input_hook",
    "feature_output_hook",
    "transcoders",
    "activation",
    "k",
    "scan",
)


@dataclass(frozen=True)
class SetSpec:
    """What a curation document says, with hooks in the project's names."""

    kind: str
    model_name: str | None
    input_hook: str
    output_hook: str
    hooks_as_written: dict[str, str]
    activation: str | None
    k: int | None
    entries: dict[int, str] | None


def read_curation_yaml(path: Path) -> dict[str, Any]:
    """Load a curation YAML safely; a malformed file or a non-mapping is a DictionaryError."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise DictionaryError(f"{path}: cannot read the curation YAML ({error})") from error
    except yaml.YAMLError as error:
        raise DictionaryError(f"{path}: malformed YAML ({error})") from error
    if not isinstance(document, dict):
        raise DictionaryError(
            f"{path}: expected a mapping with model_name, model_kind, feature_input_hook, "
            f"feature_output_hook and transcoders; found {type(document).__name__}"
        )
    return document


def _entries(value: Any, where: str, kind: str) -> dict[int, str]:
    """layer -> location from either list form; a layer given twice or a gap is an error."""
    if not isinstance(value, list) or not value:
        raise DictionaryError(f"{where}: key 'transcoders' must be a non-empty list (index = layer)")
    entries: dict[int, str] = {}
    first_seen: dict[int, int] = {}
    for index, item in enumerate(value):
        if isinstance(item, str):
            layer, location = index, item
        elif isinstance(item, Mapping):
            layer, location = item.get("layer"), item.get("filepath")
            if not isinstance(layer, int) or isinstance(layer, bool) or layer < 0:
                raise DictionaryError(f"{where}: transcoders[{index}].layer must be an integer >= 0")
            if not isinstance(location, str) or not location:
                raise DictionaryError(f"{where}: transcoders[{index}].filepath must be an hf:// URI or path")
        else:
            raise DictionaryError(
                f"{where}: transcoders[{index}] must be an hf:// URI, a path or {{id, layer, filepath}}"
            )
        if layer in entries:
            raise DictionaryError(
                f"{where}: layer {layer} is given twice (transcoders[{first_seen[layer]}] and [{index}])"
            )
        entries[layer], first_seen[layer] = location, index
    if kind != "sae":
        missing = sorted(set(range(max(entries) + 1)) - set(entries))
        if missing:
            raise DictionaryError(
                f"{where}: layers {missing} are missing; a transcoder set needs every layer from 0 to "
                f"{max(entries)}"
            )
    return dict(sorted(entries.items()))


def _hook(document: Mapping[str, Any], key: str, where: str) -> str:
    value = document.get(key)
    if not isinstance(value, str):
        raise DictionaryError(f"{where}: key {key!r} is missing (expected a hook name such as hook_mlp_out)")
    try:
        return project_hook(value, f"{where}: key {key!r}")
    except UnsupportedModelError as error:
        raise DictionaryError(str(error)) from error


def _refuse_unknown_keys(document: Mapping[str, Any], where: str) -> None:
    """A misspelt key would otherwise be ignored (``transcoderz``: the files beside the YAML used)."""
    unknown = sorted(str(key) for key in document if key not in KEYS)
    if unknown:
        hints = []
        for key in unknown:
            close = difflib.get_close_matches(key, KEYS, n=1)
            hints.append(f"{key!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise DictionaryError(
            f"{where}: unknown keys {', '.join(hints)}; a curation YAML may have {', '.join(KEYS)}"
        )


def parse_set(document: Mapping[str, Any], where: str) -> SetSpec:
    """Validate a curation document; ``where`` names its file for every error."""
    _refuse_unknown_keys(document, where)
    kind = document.get("model_kind", "transcoder_set")
    if kind not in KINDS:
        raise DictionaryError(f"{where}: model_kind {kind!r} is unknown (expected one of {', '.join(KINDS)})")
    activation = document.get("activation")
    if activation is not None and activation not in ACTIVATIONS:
        raise DictionaryError(
            f"{where}: activation {activation!r} is unknown (expected relu, topk, or no key for JumpReLU)"
        )
    k = document.get("k")
    if activation == "topk" and (not isinstance(k, int) or isinstance(k, bool) or k <= 0):
        raise DictionaryError(f"{where}: activation topk needs an integer k > 0, found {k!r}")
    if activation != "topk" and k is not None:
        raise DictionaryError(f"{where}: k is only meaningful with activation: topk")
    model_name = document.get("model_name")
    if model_name is not None and not isinstance(model_name, str):
        raise DictionaryError(f"{where}: model_name must be a repository id such as google/gemma-2-2b")
    entries = document.get("transcoders")
    return SetSpec(
        kind=kind,
        model_name=model_name,
        input_hook=_hook(document, "feature_input_hook", where),
        output_hook=_hook(document, "feature_output_hook", where),
        hooks_as_written={
            "feature_input_hook": document["feature_input_hook"],
            "feature_output_hook": document["feature_output_hook"],
        },
        activation=activation,
        k=k,
        entries=None if entries is None else _entries(entries, where, kind),
    )


def sae_document(sae: Mapping[str, Any]) -> dict[str, Any]:
    """The curation document equivalent to an SAE set written inline in the workflow config."""
    document: dict[str, Any] = {
        "model_kind": "sae",
        "feature_input_hook": sae["hook"],
        "feature_output_hook": sae["hook"],
        "transcoders": [{"layer": e["layer"], "filepath": e["filepath"]} for e in sae["entries"]],
    }
    for key in ("model_name", "activation", "k"):
        if key in sae:
            document[key] = sae[key]
    return document
