"""Which references the config names, and which layers of a dictionary set each one reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mi_oracle.errors import ConfigError, raise_problems


def ends_and_middle(layers: list[int]) -> list[int]:
    """First, middle (lower middle for an even count) and last of ``layers``: 26 layers give 0/12/25."""
    ordered = sorted(set(layers))
    picks = [ordered[0], ordered[(len(ordered) - 1) // 2], ordered[-1]]
    return sorted(set(picks))


def transcoder_layers(item: Mapping[str, Any], available: Sequence[int]) -> list[int]:
    """A plt/clt reference's layers: as configured, else the ends and middle of the set's layers."""
    return sorted(item["layers"]) if item.get("layers") else ends_and_middle(list(available))


def layers_needed(item: Mapping[str, Any], available: Sequence[int]) -> list[int]:
    """The layers of its set a reference reads (empty for ``forward``)."""
    if item["kind"] == "sae":
        return [item["layer"]]
    if item["kind"] in ("plt", "clt"):
        return transcoder_layers(item, available)
    return []


def _checked_item(
    item: Mapping[str, Any], items: Mapping[str, Any], set_names: Sequence[str]
) -> dict[str, Any]:
    name = item["name"]
    if name in items:
        raise ConfigError(f"references.items: two references are named {name!r}; names must be unique")
    if "set" in item and item["set"] not in set_names:
        raise ConfigError(
            f"references.items[{name}].set: {item['set']!r} is not a dictionary set "
            f"(dictionaries: {', '.join(set_names) or 'none'})"
        )
    if item["kind"] == "forward" and "set" in item:
        raise ConfigError(f"references.items[{name}].set: a forward reference reads no dictionary set")
    return dict(item)


def reference_items(references: Mapping[str, Any], set_names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``references.items`` by name; a repeated name or an unknown set is a ConfigError naming the
    item, every such problem listed in one error."""
    items: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    seen: set[str] = set()
    for item in references["items"]:
        try:
            items[item["name"]] = _checked_item(item, seen, set_names)
        except ConfigError as error:
            problems.append(str(error))
        seen.add(item["name"])
    raise_problems(problems)
    return items
