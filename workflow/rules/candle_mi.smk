"""The candle-mi suite (config/candle-mi.yaml): every reference candle-mi commits, each made from
its own model or dictionary set into results/candle-mi/<name>/, and the resurrection table."""


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
        committed_hashes=lambda wildcards: content_hashes(committed_copies()),
        code=code_version("mi_oracle.references.resurrection"),
    script:
        "../scripts/resurrection_table.py"
