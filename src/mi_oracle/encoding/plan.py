"""Which captured hooks each encoded layer of a set reads (imported by the Snakefile: keep it light)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mi_oracle.dictionaries.manifest import Manifest
from mi_oracle.errors import DictionaryError
from mi_oracle.layout import activation_path


def encoding_points(
    manifest: Manifest, capture_hooks: Sequence[str], capture_layers: Sequence[int]
) -> list[tuple[int, str, str]]:
    """(layer, input hook, target hook) per layer to encode; a hook or layer not captured is an error.

    The layers to encode are the manifest's ``encode_layers``; other resolved layers are there for
    the references only.
    """
    name, target_hook = manifest.name, manifest.target_hook
    points = []
    for layer in manifest.encode_layers:
        for role, hook in (("input", manifest.input_hook), ("target", target_hook)):
            if hook not in capture_hooks or layer not in capture_layers:
                raise DictionaryError(
                    f"dictionaries[{name}]: layer {layer} reads its {role} at hook {hook!r}, which the "
                    f"capture does not record (capture.hooks {list(capture_hooks)}, capture.layers "
                    f"{list(capture_layers)}): add it there, or narrow dictionaries[{name}].layers"
                )
        points.append((layer, manifest.input_hook, target_hook))
    return points


def encoding_files(
    manifest: Manifest, hooks: Sequence[str], layers: Sequence[int], run: str, shard: str
) -> list[list[Any]]:
    """[layer, input activation file, target activation file] per layer ``manifest`` encodes, in
    shard ``shard`` of run ``run``: what the rules ask of a resolved set, and what the jobs that
    read a whole shard derive themselves from the manifests they read."""
    return [
        [layer, activation_path(run, hook, layer, shard), activation_path(run, target, layer, shard)]
        for layer, hook, target in encoding_points(manifest, hooks, layers)
    ]
