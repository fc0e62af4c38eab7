rule generate_reference:
    input:
        unpack(reference_inputs),
    output:
        reference=reference_path("{reference}"),
        provenance=reference_provenance_path("{reference}"),
    log:
        "results/logs/generate_reference/{reference}.log",
    benchmark:
        "results/benchmarks/generate_reference/{reference}.tsv"
    wildcard_constraints:
        reference="|".join(re.escape(name) for name in REFERENCE_ITEMS) or "(?!)",
    # the transcoder references feed circuit-tracer's peer job, which the report waits on
    priority: 40
    conda:
        ENV
    threads: NUMERICS["threads"]
    resources:
        mem_mb=8000,
        runtime=30,
        gpu=1 if REFERENCES["device"].startswith("cuda") else 0,
    params:
        item=lambda wildcards: REFERENCE_ITEMS[wildcards.reference],
        options=REFERENCE_OPTIONS,
        numerics={"mode": NUMERICS["references"], "threads": NUMERICS["threads"]},
        code=code_version("mi_oracle.references.generate"),
    script:
        "../scripts/generate_reference.py"


# The same reference with the CPU's native kernels: the report shows how far it lies from the
# portable one, i.e. how tolerant a candidate made on another machine must be.
use rule generate_reference as generate_native_reference with:
    output:
        reference=reference_path("{reference}", "native"),
        provenance=reference_provenance_path("{reference}", "native"),
    log:
        "results/logs/generate_native_reference/{reference}.log",
    benchmark:
        "results/benchmarks/generate_native_reference/{reference}.tsv"
    resources:
        mem_mb=8000,
        runtime=30,
        gpu=1 if REFERENCES["device"].startswith("cuda") else 0,
    params:
        item=lambda wildcards: REFERENCE_ITEMS[wildcards.reference],
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
