rule encode_features:
    input:
        unpack(encoding_inputs),
    output:
        directory(features_dir("{set}", "{shard}")),
    log:
        layout.log_path("encode_features", RUN, "{set}", "part-{shard}"),
    benchmark:
        layout.benchmark_path("encode_features", RUN, "{set}", "part-{shard}")
    conda:
        ENV
    threads: ENCODING["threads"]
    resources:
        mem_mb=ENCODING["mem_mb"],
        runtime=encoding_runtime,
        gpu=1 if ENCODING["device"].startswith("cuda") else 0,
    params:
        encoding=settings_for(ENCODING, ENCODING_KEYS),
        points=lambda wildcards: encoding_files(wildcards.set, wildcards.shard),
        code=code_version("mi_oracle.encoding.run"),
    script:
        "../scripts/encode_features.py"


rule encoding_metrics:
    input:
        manifest=manifest_path("{set}"),
        shards=set_feature_shards,
    output:
        metrics=metrics_path("{set}"),
        table=report(
            metrics_path("{set}", table=True),
            caption="../report/encoding_metrics.rst",
            category="Encoding",
        ),
    log:
        layout.log_path("encoding_metrics", RUN, "{set}"),
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=code_version("mi_oracle.encoding.summary"),
    script:
        "../scripts/encoding_metrics.py"
