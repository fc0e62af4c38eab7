rule fetch_model:
    output:
        directory(layout.model_dir("{model}")),
    log:
        layout.log_path("fetch_model", "{model}"),
    benchmark:
        layout.benchmark_path("fetch_model", "{model}")
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=6000,
        runtime=60,
    params:
        model=lambda wildcards: {"name": wildcards.model, **MODELS[wildcards.model]},
        local_roots=config["local_roots"],
        code=code_version("mi_oracle.models.fetch"),
    script:
        "../scripts/fetch_model.py"
