checkpoint plan_capture:
    input:
        model=model_dir(),
        prompts=PROMPTS,
    output:
        directory(tokens_dir()),
    log:
        layout.log_path("plan_capture", RUN),
    # the synthetic calibration, the longest chain of the DAG, starts from it
    priority: 50
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        capture=settings_for(CAPTURE, PLAN_KEYS),
        text_field=config["prompts"]["text_field"],
        prompts_hash=lambda wildcards: content_hashes([PROMPTS]),
        code=code_version("mi_oracle.capture.plan"),
    script:
        "../scripts/plan_capture.py"


rule capture_activations:
    input:
        model=model_dir(),
        tokens=tokens_dir(),
    output:
        [activation_path(hook, layer, "{shard}") for hook, layer in POINTS],
    log:
        layout.log_path("capture_activations", RUN, "part-{shard}"),
    benchmark:
        layout.benchmark_path("capture_activations", RUN, "part-{shard}")
    # every encoding and cross-check reads the shards: a shard left for last ends the run alone
    priority: 50
    conda:
        ENV
    threads: CAPTURE["threads"]
    resources:
        mem_mb=CAPTURE["mem_mb"],
        runtime=CAPTURE["runtime"],
        gpu=1 if CAPTURE["device"].startswith("cuda") else 0,
    params:
        capture=settings_for(CAPTURE, CAPTURE_KEYS),
        points=POINTS,
        code=code_version("mi_oracle.capture.run"),
    script:
        "../scripts/capture_activations.py"
