rule fetch_model:
    output:
        directory(layout.model_dir("{model}")),
    log:
        "results/logs/fetch_model/{model}.log",
    benchmark:
        "results/benchmarks/fetch_model/{model}.tsv"
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        model=config["model"],
        local_roots=config["local_roots"],
        code=code_version("mi_oracle.models.fetch"),
    script:
        "../scripts/fetch_model.py"
