"""The candle-mi suite config (``config/candle-mi.yaml``): its schema and what each reference needs.

The schema checks shapes; :func:`suite_items` checks what one entry needs of the others (its model,
that model's pinned revision, its set, its family or scheme) and fails once, naming the reference
and what is missing, before any job runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from mi_oracle.config import load_schema
from mi_oracle.errors import ConfigError, raise_problems
from mi_oracle.references.families import FAMILIES

MODEL_KINDS = ("forward", "longrope", "quantized", "sae", "plt", "clt")
SET_KINDS = ("plt", "clt", "sae")


def load_suite_schema(path: Path, main_schema_path: Path) -> dict[str, Any]:
    """The suite's schema, its dictionary sets checked by the main config's dictionary schema."""
    schema = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    main = load_schema(main_schema_path)
    schema["properties"]["dictionaries"]["items"] = main["properties"]["dictionaries"]["items"]
    return schema


def _needs(name: str, what: str) -> ConfigError:
    return ConfigError(f"candle_mi.references[{name}]: {what}")


def suite_item(item: Mapping[str, Any], suite: Mapping[str, Any], sets: Mapping[str, Any]) -> dict[str, Any]:
    """``item`` checked against the rest of the suite, with its model's repo and revision and the
    suite's prompts filled in."""
    name, kind = item["name"], item["kind"]
    entry = dict(item)
    saelens = kind == "plt" and item.get("schema_version") == "0.1.24"
    if kind in MODEL_KINDS and not saelens:
        model = item.get("model")
        if model is None:
            raise _needs(name, f"a {kind} reference names its model (one of candle_mi.models)")
        if model not in suite["models"]:
            raise _needs(
                name, f"model {model!r} is not under candle_mi.models ({', '.join(suite['models'])})"
            )
        if not suite["models"][model].get("revision"):
            raise _needs(name, f"model {model!r} ({suite['models'][model]['repo']}) has no revision; pin one")
        entry |= {"repo": suite["models"][model]["repo"], "revision": suite["models"][model]["revision"]}
    if kind in SET_KINDS and not saelens and item.get("set") not in sets:
        raise _needs(name, f"set {item.get('set')!r} is not under dictionaries ({', '.join(sets) or 'none'})")
    if saelens:
        if not item.get("oracle_release") or not item.get("layers"):
            raise _needs(name, "a 0.1.24 plt reference names oracle_release (a SAELens release) and layers")
        entry.setdefault("repo", item.get("curation_repo", item["oracle_release"]))
    if "family" in item and item["family"] not in FAMILIES:
        raise _needs(name, f"family {item['family']!r} is not supported (supported: {', '.join(FAMILIES)})")
    if kind == "quantized" and "scheme" not in item:
        raise _needs(name, "a quantized reference names its scheme (bnb-nf4, awq or gptq)")
    if kind == "longrope" and not item.get("long_prompt"):
        raise _needs(name, "a longrope reference needs long_prompt (the text of its long case)")
    if kind == "sae" and ("layer" not in item or "prompt" not in item):
        raise _needs(name, "an sae reference names its layer and prompt")
    if kind in ("forward", "longrope", "quantized"):
        entry.setdefault("prompts", list(suite["prompts"]))
    return entry


def suite_items(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Every reference of the suite by name; every problem found is listed in one ConfigError."""
    suite = config["candle_mi"]
    sets = {definition["name"]: definition for definition in config.get("dictionaries", [])}
    items: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    seen: set[str] = set()
    for item in suite["references"]:
        try:
            if item["name"] in seen:
                raise _needs(item["name"], "two references have this name; names must be unique")
            items[item["name"]] = suite_item(item, suite, sets)
        except ConfigError as error:
            problems.append(str(error))
        seen.add(item["name"])
    raise_problems(problems)
    return items
