# Every configured reference in one job per numerics mode: the job loads torch, the model and its
# tokenizer once for all of them (each was a job of its own, a third of whose time was start-up).
# {numerics}: portable (the references to commit; numerics.references says how they are made) or
# native (the CPU's own kernels: the report shows how far they lie from the portable ones, i.e.
# how tolerant a candidate made on another machine must be).
rule generate_references:
    input:
        unpack(reference_inputs),
    output:
        references=all_references("{numerics}"),
        provenance=[reference_provenance_path(name, "{numerics}") for name in REFERENCE_ITEMS],
    log:
        layout.log_path("generate_references", "{numerics}"),
    benchmark:
        layout.benchmark_path("generate_references", "{numerics}")
    # the transcoder references feed circuit-tracer's peer job, which the report waits on
    priority: 40
    conda:
        ENV
    threads: NUMERICS["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1 if REFERENCES["device"].startswith("cuda") else 0,
    params:
        reference_items=list(REFERENCE_ITEMS.values()),
        manifests={name: manifest_path(name) for name in reference_sets()},
        outputs=lambda wildcards: reference_outputs(wildcards.numerics),
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


rule check_references:
    input:
        references=all_references(),
        committed=committed_references(),
    output:
        layout.REFERENCE_CHECK,
    log:
        layout.log_path("check_references"),
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        kinds={name: item["kind"] for name, item in REFERENCE_ITEMS.items()},
        committed=lambda wildcards: committed_folder(),
        committed_hashes=lambda wildcards: content_hashes(committed_references()),
        code=code_version("mi_oracle.references.check"),
    script:
        "../scripts/check_references.py"
