"""Paths and helpers shared by every rule file."""

import functools

from mi_oracle.code_version import code_version
from mi_oracle.content_params import content_hashes
from mi_oracle.config import (
    calibration_settings,
    CALIBRATION_PLAN_KEYS,
    CAPTURE_KEYS,
    ENCODING_KEYS,
    PLAN_KEYS,
    relative_to_workdir,
    resolve_inside_roots,
    settings_for,
)
from mi_oracle.dictionaries.manifest import read_manifest
from mi_oracle.dictionaries.set_files import local_set_files
from mi_oracle import layout
from mi_oracle.encoding import plan as encoding_plan
from mi_oracle.json_files import read_json
from mi_oracle.reference_plan import reference_items

ENV = "../../envs/mi-oracle.yaml"
MODEL = config["model"]["name"]
CAPTURE = config["capture"]
RUN = CAPTURE["run"]
POINTS = [[hook, layer] for hook in CAPTURE["hooks"] for layer in sorted(CAPTURE["layers"])]


def local_input(path, key):
    """A configured local path: confined to local_roots, relative to the workdir when inside it."""
    return relative_to_workdir(resolve_inside_roots(path, config["local_roots"], key, Path.cwd()), Path.cwd())


def json_files_in(folder):
    """The JSON files of a folder, each an input: editing one reruns the job that reads them."""
    return sorted(str(path) for path in Path(folder).glob("*.json"))


PROMPTS = local_input(config["prompts"]["path"], "prompts.path")


def model_dir():
    """The fetched model folder every stage reads."""
    return layout.model_dir(MODEL)


def tokens_dir():
    """The capture plan's folder (one tokens table per shard)."""
    return layout.tokens_dir(RUN)


def activation_path(hook, layer, shard):
    """One (hook, layer) file of one shard, in the hive-partitioned activation dataset."""
    return layout.activation_path(RUN, hook, layer, shard)


@functools.cache
def _read_at(reader, path, mtime_ns):
    return reader(Path(path))


def cached_json(path, reader=read_json):
    """A file read once per version (input functions run once per job: thousands of times)."""
    return _read_at(reader, str(path), Path(path).stat().st_mtime_ns)


def planned_shards():
    """The shards the capture plan lists, once the plan checkpoint has run."""
    plan = Path(checkpoints.plan_capture.get().output[0])
    return [shard["shard"] for shard in cached_json(plan / layout.PLAN_FILE)["shards"]]


def all_activations(wildcards):
    """Every activation file, once the capture plan says which shards exist."""
    return [activation_path(hook, layer, shard) for shard in planned_shards() for hook, layer in POINTS]


SETS = {definition["name"]: definition for definition in config["dictionaries"]}
if len(SETS) != len(config["dictionaries"]):
    raise ValueError("dictionaries: two sets share a name; every name must be unique")
SYNTHETIC = [name for name, definition in SETS.items() if "synthetic" in definition]


# What each wildcard may match, for every rule: a shard number, a configured set, a numerics mode.
wildcard_constraints:
    shard=r"\d{5}",
    set="|".join(re.escape(name) for name in SETS) or "(?!)",
    numerics="|".join(layout.NUMERICS_MODES),
    model=re.escape(MODEL),


synthetic_dir = layout.synthetic_dir
manifest_path = layout.manifest_path
dictionary_files_dir = layout.dictionary_files_dir


def curation_inputs(wildcards):
    """The model, plus the set's synthetic folder, or every local file the set reads (its curation
    YAML and layer files): changing one reruns resolution and everything built on the set."""
    definition = SETS[wildcards.set]
    inputs = {"model": model_dir()}
    if "synthetic" in definition:
        inputs["synthetic"] = synthetic_dir(wildcards.set)
    else:
        inputs["local"] = local_set_files(wildcards.set, definition, config["local_roots"], Path.cwd())
    return inputs


ENCODING = config["encoding"]


def features_dir(name, shard):
    """One shard's features of one set: a file per encoded layer and the metric sums, in one folder."""
    return layout.features_dir(RUN, name, shard)


def metrics_path(name, table=False):
    """A set's metrics over every shard (``metrics.json``; ``metrics.tsv`` with ``table``)."""
    return layout.metrics_path(RUN, name, table)


def resolved_manifest(name):
    """The manifest of a set (typed, its format checked), once its resolution checkpoint has run."""
    return cached_json(checkpoints.resolve_dictionary_set.get(set=name).output.manifest, read_manifest)


def encoding_files(name, shard):
    """[layer, input activation file, target activation file] per layer set ``name`` encodes."""
    return encoding_plan.encoding_files(
        resolved_manifest(name), CAPTURE["hooks"], CAPTURE["layers"], RUN, shard
    )


def encoding_inputs(wildcards):
    """The set's manifest and files, and the capture files of the input and target hooks per layer."""
    points = encoding_files(wildcards.set, wildcards.shard)
    inputs = {
        "manifest": manifest_path(wildcards.set),
        "files": dictionary_files_dir(wildcards.set),
        "activations": sorted({path for _, *paths in points for path in paths}),
    }
    if wildcards.set in SYNTHETIC:
        inputs["synthetic"] = synthetic_dir(wildcards.set)
    return inputs


def encoding_runtime(wildcards):
    """Minutes an encoding job asks for: encoding.runtime per layer it may encode (the set's
    captured layers). Known from the config alone: a dry run asks before the set is resolved."""
    layers = set(SETS[wildcards.set].get("layers") or CAPTURE["layers"]) & set(CAPTURE["layers"])
    return ENCODING["runtime"] * max(1, len(layers))


def set_feature_shards(wildcards):
    """Every shard's features folder of one set."""
    return [features_dir(wildcards.set, shard) for shard in planned_shards()]


NUMERICS = config["numerics"]
REFERENCES = config["references"]
REFERENCE_ITEMS = reference_items(REFERENCES, list(SETS))
REFERENCE_OPTIONS = {key: REFERENCES[key] for key in ("device", "dtype", "seeds_per_layer")}


reference_path = layout.reference_path
reference_provenance_path = layout.reference_provenance_path


def all_references(numerics="portable"):
    """Every reference the config names (their native copies with ``numerics="native"``)."""
    return [reference_path(name, numerics) for name in REFERENCE_ITEMS]


def references_of_set(name):
    """The references that read dictionary set ``name`` (its resolution fetches their layers)."""
    return [item for item in REFERENCE_ITEMS.values() if item.get("set") == name]


def reference_sets():
    """The dictionary sets the references read, sorted."""
    return sorted({item["set"] for item in REFERENCE_ITEMS.values() if "set" in item})


def reference_inputs(wildcards):
    """The model, plus the manifest and files of every dictionary set a reference reads."""
    sets = reference_sets()
    return {
        "model": model_dir(),
        "manifests": [manifest_path(name) for name in sets],
        "files": [dictionary_files_dir(name) for name in sets],
        "synthetic": [synthetic_dir(name) for name in sets if name in SYNTHETIC],
    }


def reference_outputs(numerics):
    """Each reference's JSON and provenance paths, by name (for the job that writes them all)."""
    return {
        name: [reference_path(name, numerics), reference_provenance_path(name, numerics)]
        for name in REFERENCE_ITEMS
    }


def committed_folder():
    """The folder of committed references check_references compares with (None when none is set)."""
    if REFERENCES["committed"] is None:
        return None
    return local_input(REFERENCES["committed"], "references.committed")


def committed_references():
    """Every committed reference, one input each ([] when no folder is set)."""
    return [] if committed_folder() is None else json_files_in(committed_folder())
