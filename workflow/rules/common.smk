"""Paths and helpers shared by every rule file."""

from mi_oracle.capture.plan import shard_ids
from mi_oracle.config import resolve_inside_roots

ENV = "../../envs/mi-oracle.yaml"
MODEL = config["model"]["name"]
CAPTURE = config["capture"]
RUN = CAPTURE["run"]
POINTS = [[hook, layer] for hook in CAPTURE["hooks"] for layer in sorted(CAPTURE["layers"])]
PROMPTS = str(
    resolve_inside_roots(config["prompts"]["path"], config["local_roots"], "prompts.path", Path.cwd())
)


def model_dir():
    """The fetched model folder every stage reads."""
    return f"resources/models/{MODEL}"


def activation_path(hook, layer, shard):
    """One (hook, layer) file of one shard, in the hive-partitioned activation dataset."""
    return f"results/activations/{RUN}/hook={hook}/layer={layer}/part-{shard}.parquet"


def all_activations(wildcards):
    """Every activation file, once the capture plan says which shards exist."""
    plan = checkpoints.plan_capture.get().output[0]
    return [activation_path(hook, layer, shard) for shard in shard_ids(plan) for hook, layer in POINTS]


SETS = {definition["name"]: definition for definition in config["dictionaries"]}
if len(SETS) != len(config["dictionaries"]):
    raise ValueError("dictionaries: two sets share a name; every name must be unique")
SYNTHETIC = [name for name, definition in SETS.items() if "synthetic" in definition]


def synthetic_dir(name):
    """The folder the workflow writes a synthetic set into (its config.yaml and weights)."""
    return f"results/synthetic/{name}"


def manifest_path(name):
    """The resolved manifest of one dictionary set."""
    return f"results/curation/{name}/manifest.json"


def curation_inputs(wildcards):
    """The model, plus the set's local curation YAML or synthetic folder when it has one."""
    definition = SETS[wildcards.set]
    inputs = {"model": model_dir()}
    if "synthetic" in definition:
        inputs["synthetic"] = synthetic_dir(wildcards.set)
    elif definition.get("curation", "").lower().endswith((".yaml", ".yml")):
        inputs["curation"] = str(
            resolve_inside_roots(
                definition["curation"],
                config["local_roots"],
                f"dictionaries[{wildcards.set}].curation",
                Path.cwd(),
            )
        )
    return inputs
