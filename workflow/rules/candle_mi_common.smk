"""Settings and input functions of the candle-mi suite's rules (workflow/rules/candle_mi.smk)."""

import re

from mi_oracle import layout
from mi_oracle.code_version import code_version
from mi_oracle.content_params import content_hashes
from mi_oracle.config import relative_to_workdir, resolve_inside_roots
from mi_oracle.references.suite_config import suite_items

ENV = "../../envs/mi-oracle.yaml"
SUITE = config["candle_mi"]
ITEMS = suite_items(config)
SUITE_SETS = {definition["name"]: definition for definition in config["dictionaries"]}
# a set is resolved against the model of the references that read it
SET_MODELS = {item["set"]: item["model"] for item in ITEMS.values() if "set" in item}
NUMERICS = config["numerics"]


wildcard_constraints:
    name="|".join(re.escape(name) for name in ITEMS),
    model="|".join(re.escape(name) for name in SUITE["models"]),
    set="|".join(re.escape(name) for name in SUITE_SETS) or "(?!)",


def committed_folder():
    """candle-mi's committed references, confined to local_roots; None when not configured."""
    if SUITE["committed"] is None:
        return None
    path = resolve_inside_roots(SUITE["committed"], config["local_roots"], "candle_mi.committed", Path.cwd())
    return relative_to_workdir(path, Path.cwd())


def committed_copies():
    """The committed copies that exist: editing one regrades its row."""
    folder = committed_folder()
    if folder is None:
        return []
    return [str(Path(folder) / f"{name}.json") for name in ITEMS if (Path(folder) / f"{name}.json").is_file()]


def suite_reference_inputs(wildcards):
    """A reference's model folder and the manifest of the set it reads."""
    item = ITEMS[wildcards.name]
    inputs = {}
    if "model" in item:
        inputs["model"] = layout.model_dir(item["model"])
    if "set" in item and item.get("schema_version") != "0.1.24":
        inputs["manifest"] = layout.manifest_path(item["set"])
    return inputs
