# Every configured reference in one job per numerics mode: the job loads torch, the model and its
# tokenizer once for all of them (each was a job of its own, a third of whose time was start-up).
rule generate_references:
    input:
        unpack(reference_inputs),
    output:
        references=all_references(),
        provenance=[reference_provenance_path(name) for name in REFERENCE_ITEMS],
    log:
        "results/logs/generate_references/portable.log",
    benchmark:
        "results/benchmarks/generate_references/portable.tsv"
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
        outputs=reference_outputs("portable"),
        options=REFERENCE_OPTIONS,
        numerics={"mode": NUMERICS["references"], "threads": NUMERICS["threads"]},
        code=code_version("mi_oracle.references.generate"),
    script:
        "../scripts/generate_references.py"


# The same references with the CPU's native kernels: the report shows how far they lie from the
# portable ones, i.e. how tolerant a candidate made on another machine must be.
use rule generate_references as generate_native_references with:
    output:
        references=all_references("native"),
        provenance=[reference_provenance_path(name, "native") for name in REFERENCE_ITEMS],
    log:
        "results/logs/generate_references/native.log",
    benchmark:
        "results/benchmarks/generate_references/native.tsv"
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=1 if REFERENCES["device"].startswith("cuda") else 0,
    params:
        reference_items=list(REFERENCE_ITEMS.values()),
        manifests={name: manifest_path(name) for name in reference_sets()},
        outputs=reference_outputs("native"),
        options=REFERENCE_OPTIONS,
        numerics={"mode": "native", "threads": NUMERICS["threads"]},
        code=code_version("mi_oracle.references.generate"),


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
        "results/logs/check_references.log",
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        kinds={name: item["kind"] for name, item in REFERENCE_ITEMS.items()},
        committed=lambda wildcards: committed_folder(),
        code=code_version("mi_oracle.references.check"),
    script:
        "../scripts/check_references.py"
