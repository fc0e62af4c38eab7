"""The candle-mi suite (config/candle-mi.yaml): every reference candle-mi commits, each made from
its own model or dictionary set into results/candle-mi/<name>/, and the resurrection table."""

import re

from mi_oracle import layout
from mi_oracle.code_version import code_version
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


rule fetch_suite_model:
    output:
        directory(layout.model_dir("{model}")),
    log:
        layout.log_path("fetch_suite_model", "{model}"),
    benchmark:
        layout.benchmark_path("fetch_suite_model", "{model}")
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        model=lambda wildcards: {"name": wildcards.model, "source": "hub", **SUITE["models"][wildcards.model]},
        local_roots=config["local_roots"],
        code=code_version("mi_oracle.models.fetch"),
    script:
        "../scripts/fetch_model.py"


rule resolve_suite_set:
    input:
        model=lambda wildcards: layout.model_dir(SET_MODELS[wildcards.set]),
    output:
        manifest=layout.manifest_path("{set}"),
        files=directory(layout.dictionary_files_dir("{set}")),
    log:
        layout.log_path("resolve_suite_set", "{set}"),
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        definition=lambda wildcards: SUITE_SETS[wildcards.set],
        layers=[],
        capture_layers=[],
        references=lambda wildcards: [item for item in ITEMS.values() if item.get("set") == wildcards.set],
        local_roots=config["local_roots"],
        code=code_version("mi_oracle.dictionaries.resolve"),
    script:
        "../scripts/resolve_dictionary_set.py"


rule candle_mi_reference:
    input:
        unpack(suite_reference_inputs),
    output:
        directory(layout.suite_reference_dir("{name}")),
    log:
        layout.log_path("candle_mi_reference", "{name}"),
    benchmark:
        layout.benchmark_path("candle_mi_reference", "{name}")
    conda:
        ENV
    threads: NUMERICS["threads"]
    resources:
        mem_mb=16000,
        runtime=120,
        gpu=lambda wildcards: 1 if ITEMS[wildcards.name]["kind"] == "quantized" else 0,
    params:
        item=lambda wildcards: ITEMS[wildcards.name],
        options={"device": SUITE["device"], "dtype": "float32", "seeds_per_layer": SUITE["seeds_per_layer"]},
        numerics={"mode": NUMERICS["references"], "threads": NUMERICS["threads"]},
        code=code_version("mi_oracle.references.suite"),
    script:
        "../scripts/candle_mi_reference.py"


rule resurrection_table:
    input:
        references=[layout.suite_reference_dir(name) for name in ITEMS],
        committed=committed_copies(),
    output:
        json=layout.RESURRECTION_JSON,
        markdown=layout.RESURRECTION_MD,
        html=layout.RESURRECTION_HTML,
    log:
        layout.log_path("resurrection_table"),
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        references=list(ITEMS.values()),
        committed=committed_folder(),
        code=code_version("mi_oracle.references.resurrection"),
    script:
        "../scripts/resurrection_table.py"
