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
