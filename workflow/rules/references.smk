# Every reference of one model in one job per numerics mode: the job loads torch, the model and its
# tokenizer once for all of them. {numerics}: portable (the references to commit;
# numerics.references says how they are made) or native (the CPU's own kernels: the report shows
# how far they lie from the portable ones, i.e. how tolerant a candidate made elsewhere must be).
rule generate_references:
    input:
        unpack(reference_inputs),
    output:
        directory(layout.references_dir("{model}", "{numerics}")),
    log:
        layout.log_path("generate_references", "{numerics}", "{model}"),
    benchmark:
        layout.benchmark_path("generate_references", "{numerics}", "{model}")
    # the transcoder references feed circuit-tracer's peer job, which the report waits on
    priority: 40
    conda:
        ENV
    threads: NUMERICS["threads"]
    resources:
        mem_mb=16000,
        runtime=120,
        gpu=reference_gpus,
    params:
        references=lambda wildcards: [item.to_json() for item in model_references(wildcards.model)],
        manifests=lambda wildcards: {
            name: manifest_path(name) for name in model_reference_sets(wildcards.model)
        },
        options=REFERENCE_OPTIONS,
        numerics=lambda wildcards: {
            "mode": NUMERICS["references"] if wildcards.numerics == "portable" else "native",
            "threads": NUMERICS["threads"],
        },
        code=code_version("mi_oracle.references.generate"),
    script:
        "../scripts/generate_references.py"


rule references:
    input:
        all_references(),
    localrule: True


# The generated references graded against the committed folder with candle-mi's bars: the check
# (fails on a difference past a bar) and the resurrection table (a row per reference).
rule check_references:
    input:
        references=all_references(),
        committed=committed_references(),
    output:
        check=layout.REFERENCE_CHECK,
        json=layout.RESURRECTION_JSON,
        markdown=layout.RESURRECTION_MD,
        html=layout.RESURRECTION_HTML,
    log:
        layout.log_path("check_references"),
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        references=[item.to_json() for item in REFERENCE_ITEMS.values()],
        folders=reference_folders(),
        committed=lambda wildcards: committed_folder(),
        strict=REFERENCES["strict"],
        committed_hashes=lambda wildcards: content_hashes(committed_references()),
        code=code_version("mi_oracle.references.check"),
    script:
        "../scripts/check_references.py"
