"""Resolve a dictionary set into a per-layer manifest: sources, revisions, files, hashes, schemas.

Only the layers a run asks for are downloaded (or, for local sets, read); every other layer of the
set is still listed with its source. Hub files are hash-checked (see ``hub_files``) and linked into
the rule's folder under ``<repo>/<path>``; local files are recorded where they are, confined to
``local_roots``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from mi_oracle.atomic import atomic_directory, write_json_atomic
from mi_oracle.config import resolve_inside_roots
from mi_oracle.dictionaries.curation import SetSpec, parse_set, read_curation_yaml, sae_document
from mi_oracle.dictionaries.formats import SAELENS_CONFIG, SAELENS_WEIGHTS, detect
from mi_oracle.dictionaries.hub_files import HubFiles
from mi_oracle.dictionaries.locations import (
    HubFile,
    is_hf_uri,
    is_local_yaml,
    parse_curation_reference,
    parse_hf_uri,
)
from mi_oracle.environment import describe_environment
from mi_oracle.errors import DictionaryError
from mi_oracle.hashing import digest_file
from mi_oracle.models.folder import read_json, summarize_config
from mi_oracle.models.provenance import link_or_copy
from mi_oracle.references.plan import layers_needed

log = logging.getLogger(__name__)

FORMAT = "mi-oracle/dictionary-manifest"
FORMAT_VERSION = 1
SYNTHETIC_PROVENANCE = "provenance.json"
_LAYER_FILE = re.compile(r"^layer_(\d+)\.safetensors$")
_CLT_ENCODER = re.compile(r"^W_enc_(\d+)\.safetensors$")


@dataclass(frozen=True)
class Origin:
    """Where the curation document came from: a local folder, or a folder of a hub repository."""

    where: str
    local_folder: Path | None = None
    hub_folder: HubFile | None = None


@dataclass
class Context:
    """What resolution needs besides the document: roots, the working directory, hub access."""

    local_roots: Sequence[str]
    base: Path
    hub: HubFiles
    staging: Path


def _relative_to_base(path: Path, base: Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def _load_document(name: str, definition: Mapping[str, Any], curation_path: Path | None, ctx: Context):
    """(document, origin, curation record) for a set defined by a YAML, a hub reference or inline."""
    key = f"dictionaries[{name}]"
    if "sae" in definition:
        document = sae_document(definition["sae"])
        return document, Origin(f"{key}.sae", local_folder=ctx.base), {"source": "inline SAE set"}
    reference = str(curation_path) if curation_path is not None else definition["curation"]
    if is_local_yaml(reference):
        path = resolve_inside_roots(reference, ctx.local_roots, f"{key}.curation", ctx.base)
        record = {"source": reference, "local_path": _relative_to_base(path, ctx.base)}
        record["sha256"] = digest_file(path).sha256
        return read_curation_yaml(path), Origin(str(path), local_folder=path.parent), record
    yaml_file = parse_curation_reference(reference, f"{key}.curation")
    cached, commit = ctx.hub.download(yaml_file)
    record = {
        "source": reference,
        "repo": yaml_file.repo,
        "path": yaml_file.path,
        "requested_revision": yaml_file.revision or "main",
        "resolved_revision": commit,
        "sha256": digest_file(cached).sha256,
    }
    folder = str(PurePosixPath(yaml_file.path).parent)
    hub_folder = HubFile(yaml_file.repo, "" if folder == "." else folder, commit)
    return read_curation_yaml(cached), Origin(yaml_file.uri, hub_folder=hub_folder), record


def _companions(name: str, layer: int) -> list[str]:
    """Files that travel with an entry's file: a CLT's decoder, a SAELens cfg.json."""
    if name == f"W_enc_{layer}.safetensors":
        return [f"W_dec_{layer}.safetensors"]
    if name == SAELENS_WEIGHTS:
        return [SAELENS_CONFIG]
    return []


def _listed_entries(spec: SetSpec, origin: Origin, ctx: Context) -> dict[int, list[str]]:
    """layer -> file names beside the YAML, for a set without a ``transcoders`` list."""
    if origin.local_folder is not None:
        names = sorted(p.name for p in origin.local_folder.iterdir() if p.is_file())
    else:
        assert origin.hub_folder is not None
        prefix = f"{origin.hub_folder.path}/" if origin.hub_folder.path else ""
        every = ctx.hub.list_files(origin.hub_folder.repo, origin.hub_folder.revision)
        names = [
            n.removeprefix(prefix) for n in every if n.startswith(prefix) and "/" not in n[len(prefix) :]
        ]
    pattern = _CLT_ENCODER if spec.kind == "cross_layer_transcoder" else _LAYER_FILE
    layers = sorted(int(m[1]) for n in names if (m := pattern.match(n)))
    if not layers:
        expected = (
            "W_enc_<l>.safetensors" if spec.kind == "cross_layer_transcoder" else "layer_<l>.safetensors"
        )
        raise DictionaryError(
            f"{origin.where}: no 'transcoders' list and no {expected}.safetensors files beside it"
        )
    entries = {}
    for layer in layers:
        files = [n for n in names if pattern.match(n) and int(pattern.match(n)[1]) == layer]
        entries[layer] = files + _companions(files[0], layer)
    missing = sorted(set(range(max(layers) + 1)) - set(layers))
    if missing:
        raise DictionaryError(f"{origin.where}: layers {missing} are missing beside the YAML")
    return entries


def _entry_files(location: str, layer: int, origin: Origin, ctx: Context) -> list[str | HubFile]:
    """Every file one entry needs, as hub files or local location strings."""
    where = f"{origin.where}: layer {layer}"
    if is_hf_uri(location):
        file = parse_hf_uri(location, where)
        parent = str(PurePosixPath(file.path).parent)
        siblings = [
            f"{parent}/{c}" if parent != "." else c for c in _companions(PurePosixPath(file.path).name, layer)
        ]
        return [file, *(HubFile(file.repo, path, file.revision) for path in siblings)]
    if origin.local_folder is None:
        raise DictionaryError(f"{where}: {location!r} is a local path in a curation YAML from the hub")
    companions = _companions(PurePosixPath(location).name, layer)
    parent = PurePosixPath(location).parent
    return [location, *(str(parent / c) for c in companions)]


def _materialise(file: str | HubFile, layer: int, origin: Origin, ctx: Context) -> tuple[Path, dict]:
    """(path to read now, record) of one file: hub files are downloaded and staged, local ones checked."""
    if isinstance(file, HubFile):
        cached, commit = ctx.hub.download(file)
        staged = ctx.staging / file.repo / file.path
        link_or_copy(cached, staged)
        record = {
            "source": file.uri,
            "repo": file.repo,
            "path": file.path,
            "requested_revision": file.revision or "main",
            "resolved_revision": commit,
        }
        return staged, record
    assert origin.local_folder is not None
    key = f"{origin.where}: layer {layer}"
    path = resolve_inside_roots(file, ctx.local_roots, key, origin.local_folder, roots_base=ctx.base)
    if not path.is_file():
        raise DictionaryError(f"{key}: {file!r} resolves to {path}, which is not a file")
    return path, {"source": file, "local_path": _relative_to_base(path, ctx.base)}


def _set_files(
    spec: SetSpec, origin: Origin, ctx: Context
) -> tuple[dict[int, str], dict[int, list[str | HubFile]]]:
    """(layer -> source as written, layer -> every file that layer needs)."""
    if spec.entries is not None:
        files = {layer: _entry_files(loc, layer, origin, ctx) for layer, loc in spec.entries.items()}
        return dict(spec.entries), files
    listed = _listed_entries(spec, origin, ctx)
    if origin.hub_folder is None:
        return {layer: names[0] for layer, names in listed.items()}, dict(listed)
    folder = origin.hub_folder
    hub_files = {
        layer: [HubFile(folder.repo, f"{folder.path}/{n}".lstrip("/"), folder.revision) for n in names]
        for layer, names in listed.items()
    }
    return {layer: files[0].uri for layer, files in hub_files.items()}, hub_files


def _check_model_fit(spec: SetSpec, entries: Mapping[int, Any], model: Mapping[str, Any], where: str) -> None:
    n_layers = model["num_hidden_layers"]
    if spec.model_name and model.get("repo") and spec.model_name != model["repo"]:
        raise DictionaryError(
            f"{where}: model_name is {spec.model_name!r} but the fetched model is {model['repo']!r}; "
            "use a dictionary set made for this model"
        )
    if len(entries) > n_layers or max(entries) >= n_layers:
        raise DictionaryError(
            f"{where}: {len(entries)} entries (layers up to {max(entries)}) but the model has "
            f"{n_layers} layers (0..{n_layers - 1})"
        )


def _layer_record(
    layer: int,
    files: list[str | HubFile],
    origin: Origin,
    model: Mapping[str, Any],
    ctx: Context,
    final: Path,
) -> dict[str, Any]:
    paths, records = [], []
    for file in files:
        path, record = _materialise(file, layer, origin, ctx)
        digest = digest_file(path)
        if isinstance(file, HubFile):
            record["local_path"] = _relative_to_base(final / file.repo / file.path, ctx.base)
        record.update(size=digest.size, sha256=digest.sha256)
        paths.append(path)
        records.append(record)
    weights = [p for p in paths if p.name != SAELENS_CONFIG]
    detected = detect(weights, layer, model["num_hidden_layers"])
    if detected.d_model != model["hidden_size"]:
        raise DictionaryError(
            f"{weights[0]}: d_model is {detected.d_model} but the model's hidden_size is "
            f"{model['hidden_size']}; this dictionary was made for another model"
        )
    return {
        "layer": layer,
        "files": records,
        "schema": detected.schema,
        "d_model": detected.d_model,
        "d_sae": detected.d_sae,
        "details": detected.details,
        "tensors": {
            name: {t: {"shape": list(info.shape), "dtype": info.dtype} for t, info in tensors.items()}
            for name, tensors in detected.tensors.items()
        },
    }


def resolve_set(
    name: str,
    definition: Mapping[str, Any],
    model_dir: Path,
    layers: Sequence[int] | None,
    default_layers: Sequence[int],
    local_roots: Sequence[str],
    manifest_path: Path,
    files_dir: Path,
    curation_path: Path | None = None,
    base: Path | None = None,
    references: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """Resolve dictionary set ``name`` for the model in ``model_dir``; write its manifest and files.

    ``layers``: the layers to download, inspect and encode; ``None``: those of ``default_layers``
    (the captured layers) the set has.
    ``curation_path``: the YAML of a synthetic set, built by the workflow.
    ``references``: the configured references that read this set; the layers they read are
    resolved too (and listed apart from ``encode_layers``).
    """
    base = (base or Path.cwd()).resolve()
    provenance = read_json(Path(model_dir) / "provenance.json")
    model = {**summarize_config(model_dir), "name": provenance.get("name"), "repo": provenance.get("repo")}
    model["resolved_revision"] = provenance.get("resolved_revision")
    with atomic_directory(Path(files_dir)) as staging:
        ctx = Context(local_roots, base, HubFiles(f"the revision of dictionaries[{name}]"), staging)
        document, origin, curation = _load_document(name, definition, curation_path, ctx)
        spec = parse_set(document, origin.where)
        sources, files_of = _set_files(spec, origin, ctx)
        entries = sources
        _check_model_fit(spec, entries, model, origin.where)
        encode = _wanted_layers(name, layers, default_layers, sorted(entries))
        wanted = sorted(set(encode) | set(_reference_layers(name, references, sorted(entries))))
        resolved = [
            _layer_record(layer, files_of[layer], origin, model, ctx, Path(files_dir)) for layer in wanted
        ]
    for record in resolved:
        record.update(input_hook=spec.input_hook, output_hook=spec.output_hook)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "set": name,
        "kind": spec.kind,
        "synthetic": curation_path is not None,
        "model": model,
        "curation": curation,
        "model_name": spec.model_name,
        "input_hook": spec.input_hook,
        "output_hook": spec.output_hook,
        "hooks_as_written": spec.hooks_as_written,
        "activation": _activation(spec, resolved),
        **_uniform(resolved, ("schema", "d_model", "d_sae")),
        "k": spec.k,
        "available_layers": [{"layer": layer, "source": sources[layer]} for layer in sorted(entries)],
        "encode_layers": encode,
        "layers": resolved,
        "environment": describe_environment(),
    }
    if curation_path is not None:
        manifest["synthetic_provenance"] = read_json(Path(curation_path).parent / SYNTHETIC_PROVENANCE)
    write_json_atomic(Path(manifest_path), manifest)
    log.info("%s: %d of %d layers resolved (%s)", name, len(resolved), len(entries), spec.kind)
    return manifest


def _wanted_layers(
    name: str, layers: Sequence[int] | None, default_layers: Sequence[int], available: list[int]
) -> list[int]:
    """The explicit layers (each must exist in the set), else the default layers the set has."""
    if layers is not None:
        absent = sorted(set(layers) - set(available))
        if absent:
            raise DictionaryError(
                f"dictionaries[{name}].layers: {absent} not in the set (it has {available})"
            )
        return sorted(set(layers))
    wanted = sorted(set(default_layers) & set(available))
    if not wanted:
        raise DictionaryError(
            f"dictionaries[{name}]: none of the captured layers {sorted(default_layers)} is in the set "
            f"(it has {available}); set dictionaries[{name}].layers or capture.layers"
        )
    return wanted


def _reference_layers(name: str, references: Sequence[Mapping[str, Any]], available: list[int]) -> list[int]:
    """The layers ``references`` read; one the set does not have is an error naming the reference."""
    needed: set[int] = set()
    for item in references:
        layers = layers_needed(item, available)
        absent = sorted(set(layers) - set(available))
        if absent:
            raise DictionaryError(
                f"references.items[{item['name']}]: layers {absent} are not in set {name} "
                f"(it has {available})"
            )
        needed.update(layers)
    return sorted(needed)


def _uniform(layers: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Each of ``keys`` whose value is the same in every resolved layer (a mixed key is left out)."""
    return {key: layers[0][key] for key in keys if len({str(layer[key]) for layer in layers}) == 1}


def _activation(spec: SetSpec, layers: list[dict[str, Any]]) -> dict[str, Any]:
    """The activation the set uses: the YAML's, else what its weights imply (a threshold: JumpReLU)."""
    if spec.activation is not None:
        return {"kind": spec.activation, "source": "curation YAML"}
    implied = sorted({layer["details"]["activation"] for layer in layers})
    return {"kind": implied[0] if len(implied) == 1 else implied, "source": "weights"}
