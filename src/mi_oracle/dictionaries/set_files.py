"""Which files a dictionary set names: its curation document, and per layer the local paths or hub
files (with their companions: a CLT's decoder, a SAELens cfg.json) it reads.

Used by resolution, and by the workflow when it builds the DAG: every local file a set reads is an
input of its resolution job, so changing one reruns resolution and what follows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mi_oracle.config import relative_to_workdir, resolve_inside_roots
from mi_oracle.dictionaries.curation import SetSpec, parse_set, read_curation_yaml, sae_document
from mi_oracle.dictionaries.locations import (
    HubFile,
    is_hf_uri,
    is_local_yaml,
    parse_curation_reference,
    parse_hf_uri,
)
from mi_oracle.errors import DictionaryError
from mi_oracle.formats import companions, listing_format
from mi_oracle.hashing import digest_file

if TYPE_CHECKING:  # the hub client is imported by the job that downloads, not by the Snakefile
    from mi_oracle.dictionaries.hub_files import HubFiles


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
    hub: HubFiles | None
    staging: Path | None


def load_document(name: str, definition: Mapping[str, Any], curation_path: Path | None, ctx: Context):
    """(document, origin, curation record) for a set defined by a YAML, a hub reference or inline."""
    key = f"dictionaries[{name}]"
    if "sae" in definition:
        document = sae_document(definition["sae"])
        return document, Origin(f"{key}.sae", local_folder=ctx.base), {"source": "inline SAE set"}
    reference = str(curation_path) if curation_path is not None else definition["curation"]
    if is_local_yaml(reference):
        path = resolve_inside_roots(reference, ctx.local_roots, f"{key}.curation", ctx.base)
        if not path.is_file():
            raise DictionaryError(f"{key}.curation: {reference!r} resolves to {path}, which is not a file")
        record = {"source": reference, "local_path": relative_to_workdir(path, ctx.base)}
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
    pattern = listing_format(spec.kind).beside_yaml
    layers = sorted(int(m[1]) for n in names if (m := pattern.match(n)))
    if not layers:
        raise DictionaryError(
            f"{origin.where}: no 'transcoders' list and no "
            f"{listing_format(spec.kind).beside_yaml_example} files beside it"
        )
    entries = {}
    for layer in layers:
        files = [n for n in names if pattern.match(n) and int(pattern.match(n)[1]) == layer]
        entries[layer] = files + companions(files[0], layer)
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
            f"{parent}/{c}" if parent != "." else c for c in companions(PurePosixPath(file.path).name, layer)
        ]
        return [file, *(HubFile(file.repo, path, file.revision) for path in siblings)]
    if origin.local_folder is None:
        raise DictionaryError(f"{where}: {location!r} is a local path in a curation YAML from the hub")
    travelling = companions(PurePosixPath(location).name, layer)
    parent = PurePosixPath(location).parent
    return [location, *(str(parent / c) for c in travelling)]


def set_files(
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


def local_set_files(
    name: str, definition: Mapping[str, Any], local_roots: Sequence[str], base: Path
) -> list[str]:
    """Every local file set ``name`` reads (its curation YAML, each layer's files), relative to
    ``base`` where they lie inside it; hub files and synthetic sets (built by the workflow) are not
    listed. Resolution checks each file it reads against this same logic."""
    if "synthetic" in definition:
        return []
    base = Path(base).resolve()
    ctx = Context(local_roots, base, None, None)
    if "sae" not in definition and not is_local_yaml(definition["curation"]):
        return []
    document, origin, curation = load_document(name, definition, None, ctx)
    spec = parse_set(document, origin.where)
    _sources, files_of = set_files(spec, origin, ctx)
    paths = [curation["local_path"]] if "local_path" in curation else []
    for layer, files in files_of.items():
        for file in files:
            if not isinstance(file, HubFile):
                paths.append(relative_to_workdir(local_path(file, layer, origin, ctx), base))
    return sorted(set(paths))


def local_path(file: str, layer: int, origin: Origin, ctx: Context) -> Path:
    """A local entry file resolved against its YAML's folder, confined to ``local_roots``."""
    assert origin.local_folder is not None
    key = f"{origin.where}: layer {layer}"
    path = resolve_inside_roots(file, ctx.local_roots, key, origin.local_folder, roots_base=ctx.base)
    if not path.is_file():
        raise DictionaryError(f"{key}: {file!r} resolves to {path}, which is not a file")
    return path
