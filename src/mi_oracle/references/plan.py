"""Which references the config names, from which model and set, and which layers of a set each reads.

:func:`reference_items` turns ``references.items`` into typed :class:`ReferenceItem`\\ s, each
checked by its kind and against the rest of the config (its model, that model's pinned
revision, its set), every problem listed in one ConfigError naming the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from mi_oracle.errors import ConfigError, raise_problems
from mi_oracle.model_config import default_model
from mi_oracle.references.families import FAMILIES
from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds import KINDS, kind_of


def _completed(item: ReferenceItem, config: Mapping[str, Any]) -> ReferenceItem:
    """``item`` with its prompts (the named family's, else the references') and the repository and
    revision it is made from: its model's, when it reads the model or a set resolved against it,
    else (the SAELens PLT) its release's."""
    kind = KINDS[item.kind]
    model = config["models"].get(item.model, {})
    if kind.reads_model(item) or kind.item_set(item) is not None:
        item = replace(item, repo=model.get("repo", ""), revision=model.get("revision", ""))
    else:
        item = replace(item, repo=item.curation_repo or item.oracle_release or "")
    if "prompts" in kind.required and not item.prompts:
        family = FAMILIES.get(item.family or "")
        item = replace(
            item,
            prompts=tuple(family.prompts if family and family.prompts else config["references"]["prompts"]),
        )
    return item


def _problems(item: ReferenceItem, config: Mapping[str, Any]) -> list[str]:
    models, sets = config["models"], {d["name"] for d in config["dictionaries"]}
    if item.kind not in KINDS:
        return [f"kind {item.kind!r} is not supported (supported: {', '.join(KINDS)})"]
    kind = kind_of(item)
    problems = kind.check(item)
    if item.model is None:
        problems.append(f"names no model, and the config has {len(models)} (name one of {', '.join(models)})")
    elif item.model not in models:
        problems.append(f"model {item.model!r} is not under models ({', '.join(models)})")
    set_name = kind.item_set(item)
    if set_name is not None and set_name not in sets:
        problems.append(f"set {set_name!r} is not under dictionaries ({', '.join(sorted(sets)) or 'none'})")
    if item.set is not None and set_name is None and not problems:
        problems.append(f"set: a {item.kind} reference of schema {kind.schema_version(item)} reads no set")
    return problems


def reference_items(config: Mapping[str, Any]) -> dict[str, ReferenceItem]:
    """``references.items`` by name, typed and checked; every problem found listed in one ConfigError."""
    items: dict[str, ReferenceItem] = {}
    problems: list[str] = []
    seen: set[str] = set()
    for entry in config["references"]["items"]:
        name = entry["name"]
        where = f"references.items[{name}]"
        if name in seen:
            problems.append(f"{where}: two references have this name; names must be unique")
            continue
        seen.add(name)
        try:
            item = ReferenceItem.from_json(entry)
        except ConfigError as error:
            problems.append(str(error))
            continue
        if item.model is None:
            item = replace(item, model=default_model(config["models"]))
        if item.kind in KINDS:
            item = _completed(item, config)
        found = _problems(item, config)
        problems += [f"{where}: {problem}" for problem in found]
        if not found:
            items[name] = item
    raise_problems(problems)
    return items


def layers_needed(item: ReferenceItem, available: Sequence[int]) -> list[int]:
    """The layers of its set a reference reads (empty when it reads no set)."""
    return kind_of(item).layers_needed(item, available)


def item_set(item: ReferenceItem) -> str | None:
    """The dictionary set a reference reads, or None."""
    return kind_of(item).item_set(item)


def layers_by_reference(items: Sequence[Mapping[str, Any]]) -> Callable[[list[int]], dict[str, list[int]]]:
    """For a set's resolution: each reference's layers (``items``: ``ReferenceItem.to_json``
    entries of the references that read the set), given the layers the set has."""
    typed = [ReferenceItem.from_json(item) for item in items]
    return lambda available: {item.name: layers_needed(item, available) for item in typed}
