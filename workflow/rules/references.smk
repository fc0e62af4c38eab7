rule generate_reference:
    input:
        unpack(reference_inputs),
    output:
        reference_path("{reference}"),
    log:
        "results/logs/generate_reference/{reference}.log",
    benchmark:
        "results/benchmarks/generate_reference/{reference}.tsv"
    wildcard_constraints:
        reference="|".join(re.escape(name) for name in REFERENCE_ITEMS) or "(?!)",
    conda:
        ENV
    threads: REFERENCES["threads"]
    resources:
        mem_mb=8000,
        runtime=30,
        gpu=1 if REFERENCES["device"].startswith("cuda") else 0,
    params:
        item=lambda wildcards: REFERENCE_ITEMS[wildcards.reference],
        options=REFERENCE_OPTIONS,
    script:
        "../scripts/generate_reference.py"


rule references:
    input:
        all_references(),
    localrule: True


rule check_references:
    input:
        references=all_references(),
        committed=committed_references(),
    output:
        "results/reports/reference_check.json",
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
    script:
        "../scripts/check_references.py"
