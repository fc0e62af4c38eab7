"""Resolve a dictionary set into a per-layer manifest: sources, revisions, files, hashes, schemas.

Only the layers a run asks for are downloaded (or, for local sets, read); every other layer of the
set is still listed with its source. Hub files are hash-checked (see ``hub_files``) and linked into
the rule's folder under ``<repo>/<path>``; local files are recorded where they are, confined to
``local_roots``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mi_oracle.atomic import atomic_directory, write_json_atomic
from mi_oracle.config import relative_to_workdir
from mi_oracle.dictionaries.curation import SetSpec, parse_set
from mi_oracle.dictionaries.hub_files import HubFiles
from mi_oracle.dictionaries.locations import HubFile
from mi_oracle.dictionaries.manifest import DictionaryFile, LayerRecord, Manifest
from mi_oracle.dictionaries.set_files import Context, Origin, load_document, local_path, set_files
from mi_oracle.dictionaries.verify import verify_folder_hashes
from mi_oracle.environment import describe_environment
from mi_oracle.errors import DictionaryError
from mi_oracle.formats import detect, weight_files
from mi_oracle.hashing import digest_file
from mi_oracle.json_files import read_json
from mi_oracle.layout import PROVENANCE_FILE
from mi_oracle.models.folder import summarize_config
from mi_oracle.models.provenance import link_or_copy, model_identity

log = logging.getLogger(__name__)


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
    path = local_path(file, layer, origin, ctx)
    return path, {"source": file, "local_path": relative_to_workdir(path, ctx.base)}


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
    spec: SetSpec,
    model: Mapping[str, Any],
    ctx: Context,
    final: Path,
) -> LayerRecord:
    paths, records = [], []
    for file in files:
        path, record = _materialise(file, layer, origin, ctx)
        digest = digest_file(path)
        if isinstance(file, HubFile):
            record["local_path"] = relative_to_workdir(final / file.repo / file.path, ctx.base)
        record.update(size=digest.size, sha256=digest.sha256)
        paths.append(path)
        records.append(DictionaryFile.from_json(record))
    weights = weight_files(paths)
    detected = detect(weights, layer, model["num_hidden_layers"])
    if detected.d_model != model["hidden_size"]:
        raise DictionaryError(
            f"{weights[0]}: d_model is {detected.d_model} but the model's hidden_size is "
            f"{model['hidden_size']}; this dictionary was made for another model"
        )
    return LayerRecord(
        layer=layer,
        files=tuple(records),
        schema=detected.schema,
        d_model=detected.d_model,
        d_sae=detected.d_sae,
        input_hook=spec.input_hook,
        output_hook=spec.output_hook,
        details=detected.details,
        tensors={
            name: {t: {"shape": list(info.shape), "dtype": info.dtype} for t, info in tensors.items()}
            for name, tensors in detected.tensors.items()
        },
    )


@dataclass(frozen=True)
class ResolveRequest:
    """What to resolve: set ``name`` (its config ``definition``) for the model in ``model_dir``.

    ``layers``: the layers to download, inspect and encode; ``None``: those of ``default_layers``
    (the captured layers) the set has. ``local_roots``: where local files may lie (relative to
    ``base``, the workdir). ``curation_path``: the YAML of a synthetic set, built by the workflow.
    ``references``: the configured references that read this set; the layers they read are
    resolved too (and listed apart from ``encode_layers``).
    """

    name: str
    definition: Mapping[str, Any]
    model_dir: Path
    layers: Sequence[int] | None
    default_layers: Sequence[int]
    local_roots: Sequence[str]
    manifest_path: Path
    files_dir: Path
    curation_path: Path | None = None
    base: Path | None = None
    # each reference's layers of this set, given the layers the set has (references.plan)
    reference_layers: Callable[[list[int]], Mapping[str, list[int]]] | None = None


def resolve_set(request: ResolveRequest) -> Manifest:
    """Resolve a dictionary set; write its manifest and stage its hub files (see ResolveRequest)."""
    name, definition, model_dir = request.name, request.definition, request.model_dir
    layers, default_layers, local_roots = request.layers, request.default_layers, request.local_roots
    manifest_path, files_dir, curation_path = request.manifest_path, request.files_dir, request.curation_path
    base, references = request.base, request.reference_layers
    base = (base or Path.cwd()).resolve()
    if curation_path is not None:
        verify_folder_hashes(Path(curation_path).parent, f"synthetic set {name}")
    model = {**summarize_config(model_dir), **model_identity(model_dir)}
    with atomic_directory(Path(files_dir)) as staging:
        ctx = Context(local_roots, base, HubFiles(f"the revision of dictionaries[{name}]"), staging)
        document, origin, curation = load_document(name, definition, curation_path, ctx)
        spec = parse_set(document, origin.where)
        sources, files_of = set_files(spec, origin, ctx)
        entries = sources
        _check_model_fit(spec, entries, model, origin.where)
        encode = _wanted_layers(name, layers, default_layers, sorted(entries))
        wanted = sorted(set(encode) | set(_reference_layers(name, references, sorted(entries))))
        resolved = [
            _layer_record(layer, files_of[layer], origin, spec, model, ctx, Path(files_dir))
            for layer in wanted
        ]
    manifest = Manifest(
        name=name,
        kind=spec.kind,
        synthetic=curation_path is not None,
        model=model,
        curation=curation,
        model_name=spec.model_name,
        input_hook=spec.input_hook,
        output_hook=spec.output_hook,
        hooks_as_written=spec.hooks_as_written,
        activation=_activation(spec, resolved),
        k=spec.k if spec.k is not None else _implied_k(resolved),
        available_layers=tuple({"layer": layer, "source": sources[layer]} for layer in sorted(entries)),
        encode_layers=tuple(encode),
        layers=tuple(resolved),
        environment=describe_environment(),
        synthetic_provenance=(
            read_json(Path(curation_path).parent / PROVENANCE_FILE) if curation_path is not None else None
        ),
    )
    write_json_atomic(Path(manifest_path), manifest.to_json())
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


def _reference_layers(
    name: str, reference_layers: Callable[[list[int]], Mapping[str, list[int]]] | None, available: list[int]
) -> list[int]:
    """The layers the references read; one the set does not have is an error naming the reference."""
    needed: set[int] = set()
    for reference, layers in (reference_layers(available) if reference_layers else {}).items():
        absent = sorted(set(layers) - set(available))
        if absent:
            raise DictionaryError(
                f"references.items[{reference}]: layers {absent} are not in set {name} (it has {available})"
            )
        needed.update(layers)
    return sorted(needed)


def _implied_k(layers: list[LayerRecord]) -> int | None:
    """The TopK ``k`` the weights' own config gives (a format's ``details``), when every layer agrees."""
    found = {layer.details.get("k") for layer in layers}
    return found.pop() if len(found) == 1 else None


def _activation(spec: SetSpec, layers: list[LayerRecord]) -> dict[str, Any]:
    """The activation the set uses: the YAML's, else what its weights imply (a threshold: JumpReLU)."""
    if spec.activation is not None:
        return {"kind": spec.activation, "source": "curation YAML"}
    implied = sorted({layer.details["activation"] for layer in layers})
    return {"kind": implied[0] if len(implied) == 1 else implied, "source": "weights"}
