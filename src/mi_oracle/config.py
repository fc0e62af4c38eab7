"""Validate the workflow configuration against its JSON Schema, filling in defaults."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from mi_oracle.errors import ConfigError, PathEscapeError
from mi_oracle.formats import synthetic_schemas


def load_schema(path: Path) -> dict[str, Any]:
    """Read the config's YAML JSON Schema safely; the synthetic schemas come from the format registry."""
    with Path(path).open(encoding="utf-8") as handle:
        schema = yaml.safe_load(handle)
    synthetic = schema["properties"]["dictionaries"]["items"]["properties"]["synthetic"]
    synthetic["properties"]["schema"]["enum"] = list(synthetic_schemas())
    return schema


def _fill_defaults(validator_class: type) -> type:
    """A validator class that also writes each property's ``default`` into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if isinstance(instance, MutableMapping):
            for key, subschema in properties.items():
                if "default" in subschema and key not in instance:
                    instance[key] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": properties_with_defaults})


_DefaultingValidator = _fill_defaults(jsonschema.Draft202012Validator)


def _key_of(path: Iterable[Any]) -> str:
    return ".".join(str(part) for part in path) or "<top level>"


def _describe(error: jsonschema.ValidationError, schema: Mapping[str, Any]) -> list[str]:
    """One line per offending key: the key, what was wrong and what was expected."""
    key = _key_of(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        prefix = f"{key}." if error.absolute_path else ""
        return [f"{prefix}{name}: unknown key (allowed here: {', '.join(allowed)})" for name in unknown]
    if error.validator == "required":
        missing = error.message.split("'")[1]
        parent = schema_at(schema, list(error.absolute_path))
        expected = parent.get("properties", {}).get(missing, {}).get("description", "a value")
        full = f"{key}.{missing}" if error.absolute_path else missing
        return [f"{full}: required key is missing (expected: {expected})"]
    if error.validator == "oneOf" and all(set(alt) == {"required"} for alt in error.validator_value):
        choices = sorted(name for alt in error.validator_value for name in alt["required"])
        present = sorted(set(choices) & set(error.instance)) if isinstance(error.instance, Mapping) else []
        found = f"found {', '.join(present)}" if present else "found none"
        return [f"{key}: needs exactly one of {', '.join(choices)} ({found})"]
    expected = error.schema.get("description") if isinstance(error.schema, Mapping) else None
    line = f"{key}: {error.message}"
    if expected:
        line += f" (expected: {expected})"
    return [line]


def schema_at(schema: Mapping[str, Any], path: list[Any]) -> Mapping[str, Any]:
    """The sub-schema that describes the value at ``path`` (object properties, a mapping's values
    and array items)."""
    node: Mapping[str, Any] = schema
    for part in path:
        if isinstance(part, int):
            node = node.get("items", {})
        elif part in node.get("properties", {}):
            node = node["properties"][part]
        else:  # a mapping by name (models): every value has one schema
            extra = node.get("additionalProperties")
            node = extra if isinstance(extra, Mapping) else {}
    return node


def validate_config(
    config: MutableMapping[str, Any], schema: Mapping[str, Any], sources: Iterable[str | Path] = ()
) -> MutableMapping[str, Any]:
    """Validate ``config`` in place, filling in defaults; raise one ConfigError listing every problem."""
    validator = _DefaultingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = sorted({line for error in errors for line in _describe(error, schema)})
        where = ", ".join(str(s) for s in sources) or "the configuration"
        raise ConfigError(f"invalid configuration in {where}:\n  " + "\n  ".join(lines))
    return config


def with_sorted_keys(value: Any) -> Any:
    """``value`` with every mapping's keys in sorted order (lists keep theirs): a configuration's
    params then read the same however its file orders its keys, so reordering reruns nothing."""
    if isinstance(value, Mapping):
        return {key: with_sorted_keys(value[key]) for key in sorted(value)}
    if isinstance(value, list):
        return [with_sorted_keys(item) for item in value]
    return value


def resolve_inside_roots(
    path: str | Path, roots: Iterable[str | Path], key: str, base: Path, roots_base: Path | None = None
) -> Path:
    """Resolve ``path`` (relative to ``base``) and refuse it unless it lies inside one of ``roots``.

    ``roots`` are relative to ``roots_base`` (default: ``base``), the working directory in practice.
    """
    resolved = (base / Path(path)).resolve()
    resolved_roots = [((roots_base or base) / Path(root)).resolve() for root in roots]
    if not any(resolved == root or root in resolved.parents for root in resolved_roots):
        allowed = ", ".join(str(root) for root in resolved_roots)
        raise PathEscapeError(
            f"{key}: {str(path)!r} resolves to {resolved}, outside the allowed roots ({allowed}); "
            "add its folder to local_roots if it is meant to be used"
        )
    return resolved


# What each job's params carry: only settings that change its outputs. Snakemake reruns a job
# when a param changes, so resources (threads, mem_mb, runtime) stay out of them.
PLAN_KEYS = ("max_length", "add_special_tokens", "shard_tokens")
# what a synthetic calibration's tokens depend on (shards only split them: it reads them all in order)
CALIBRATION_PLAN_KEYS = ("max_length", "add_special_tokens")
CAPTURE_KEYS = (
    "device",
    "dtype",
    "storage_dtype",
    "batch_tokens",
    "max_padding",
    "row_group_rows",
    "compression",
    "float_encoding",
)
CALIBRATION_KEYS = ("layers", "device", "dtype", "batch_tokens", "max_padding")
ENCODING_KEYS = ("device", "dtype", "batch_rows", "compression", "row_group_rows")


def settings_for(section: Mapping[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """The keys of a config section a job's outputs depend on (its params)."""
    return {key: section[key] for key in keys}


def calibration_settings(capture: Mapping[str, Any], numerics_mode: str) -> dict[str, Any]:
    """The capture settings a synthetic build's calibration forward uses: in portable numerics it
    runs in float32 on the CPU whatever ``capture`` asks (so a CUDA run reuses the same sets)."""
    settings = settings_for(capture, CALIBRATION_KEYS)
    return {**settings, "device": "cpu", "dtype": "float32"} if numerics_mode == "portable" else settings


def relative_to_workdir(path: Path, workdir: Path) -> str:
    """``path`` relative to ``workdir`` when it lies inside it (a moved or copied workdir stays up
    to date: Snakemake records input paths as written), else absolute."""
    path, workdir = Path(path).resolve(), Path(workdir).resolve()
    return str(path.relative_to(workdir)) if path.is_relative_to(workdir) else str(path)
