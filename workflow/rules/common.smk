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
from mi_oracle.model_config import capture_model, set_models
from mi_oracle.references.plan import item_set, reference_items
from mi_oracle.references.item import ReferenceFile
from mi_oracle.references.kinds import kind_of

ENV = "../../envs/mi-oracle.yaml"
MODELS = config["models"]
MODEL = capture_model(config, CAPTURING)
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
REFERENCE_ITEMS = reference_items(config)
# the model each set is resolved against: its own, else its references', else the capture model
SET_MODELS = set_models(
    config,
    {name: {item.model for item in REFERENCE_ITEMS.values() if item_set(item) == name} for name in SETS},
    MODEL,
    CAPTURING,
)


# What each wildcard may match, for every rule: a shard number, a configured set, a numerics mode.
wildcard_constraints:
    shard=r"\d{5}",
    set="|".join(re.escape(name) for name in SETS) or "(?!)",
    numerics="|".join(layout.NUMERICS_MODES),
    model="|".join(re.escape(name) for name in MODELS),


synthetic_dir = layout.synthetic_dir
manifest_path = layout.manifest_path
dictionary_files_dir = layout.dictionary_files_dir


def curation_inputs(wildcards):
    """The model, plus the set's synthetic folder, or every local file the set reads (its curation
    YAML and layer files): changing one reruns resolution and everything built on the set."""
    definition = SETS[wildcards.set]
    inputs = {"model": layout.model_dir(SET_MODELS[wildcards.set])}
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
REFERENCE_OPTIONS = {key: REFERENCES[key] for key in ("device", "dtype", "seeds_per_layer")}
# one reference job per model and numerics: torch loads each model once
REFERENCE_MODELS = sorted({item.model for item in REFERENCE_ITEMS.values()})


def model_references(model):
    """The references made from ``model``, in config order."""
    return [item for item in REFERENCE_ITEMS.values() if item.model == model]


def all_references(numerics="portable"):
    """Every model's references folder (their native copies with ``numerics="native"``)."""
    return [layout.references_dir(model, numerics) for model in REFERENCE_MODELS]


def reference_folders(numerics="portable"):
    """Each reference's folder, by reference name."""
    return {name: layout.references_dir(item.model, numerics) for name, item in REFERENCE_ITEMS.items()}


def reference_entries(numerics):
    """Each reference's kind, set and file (``ReferenceFile``), by name: what the report and the
    peers read."""
    return {
        name: ReferenceFile(
            name,
            item.kind,
            item_set(item),
            str(layout.reference_file(layout.references_dir(item.model, numerics), name)),
        ).to_json()
        for name, item in REFERENCE_ITEMS.items()
    }


def references_of_set(name):
    """The references that read dictionary set ``name`` (its resolution fetches their layers)."""
    return [item.to_json() for item in REFERENCE_ITEMS.values() if item_set(item) == name]


def model_reference_sets(model):
    """The dictionary sets the references of ``model`` read, sorted."""
    return sorted({item_set(item) for item in model_references(model)} - {None})


def reference_inputs(wildcards):
    """The model (when a reference of it reads the model), and the manifest and files of every
    dictionary set its references read."""
    items = model_references(wildcards.model)
    sets = model_reference_sets(wildcards.model)
    inputs = {
        "manifests": [manifest_path(name) for name in sets],
        "files": [dictionary_files_dir(name) for name in sets],
        "synthetic": [synthetic_dir(name) for name in sets if name in SYNTHETIC],
    }
    if any(kind_of(item).reads_model(item) for item in items):
        inputs["model"] = layout.model_dir(wildcards.model)
    return inputs


def reference_gpus(wildcards):
    """1 when a reference of the model needs a GPU (quantized) or the config asks CUDA, else 0."""
    items = model_references(wildcards.model)
    return int(REFERENCES["device"].startswith("cuda") or any(kind_of(i).needs_gpu for i in items))


def committed_folder():
    """The folder of committed references check_references grades against (None when none is set)."""
    if REFERENCES["committed"] is None:
        return None
    return local_input(REFERENCES["committed"], "references.committed")


def committed_references():
    """The committed copies of the configured references that exist (and, in strict mode, every
    committed JSON): editing one regrades its row."""
    folder = committed_folder()
    if folder is None:
        return []
    if REFERENCES["strict"]:
        return json_files_in(folder)
    return [
        str(Path(folder) / f"{n}.json") for n in REFERENCE_ITEMS if (Path(folder) / f"{n}.json").is_file()
    ]


def check_outputs():
    """The reference check and the resurrection table (every row "no committed copy" when no
    committed folder is configured), when the config makes references."""
    if not REFERENCE_ITEMS:
        return []
    return [
        layout.REFERENCE_CHECK,
        layout.RESURRECTION_JSON,
        layout.RESURRECTION_MD,
        layout.RESURRECTION_HTML,
    ]


def capture_targets():
    """Capture's model, every set's manifest and metrics, and the report, when the config has a
    capture section (known now: only the activation files wait on the capture plan)."""
    if not CAPTURING:
        return []
    sets = [path for name in SETS for path in (manifest_path(name), metrics_path(name))]
    return [model_dir(), *sets, layout.report_path(RUN)]


def captured_activations(wildcards):
    """Every activation file, when the config has a capture section."""
    return all_activations(wildcards) if CAPTURING else []
