if SYNTHETIC:

    rule calibrate_synthetic_dictionaries:
        input:
            model=model_dir(),
            prompts=PROMPTS,
        output:
            temp(directory(layout.calibration_dir())),
        log:
            layout.log_path("calibrate_synthetic_dictionaries"),
        benchmark:
            layout.benchmark_path("calibrate_synthetic_dictionaries")
        # every encoding waits on it, so it runs before jobs that can wait
        priority: 50
        conda:
            ENV
        threads: NUMERICS["threads"]
        resources:
            mem_mb=6000,
            runtime=30,
        params:
            definitions={name: SETS[name]["synthetic"] for name in SYNTHETIC},
            # tokenized as the capture plan is, not read from a run's plan: every run shares the sets
            plan=settings_for(CAPTURE, CALIBRATION_PLAN_KEYS),
            text_field=config["prompts"]["text_field"],
            prompts_hash=lambda wildcards: content_hashes([PROMPTS]),
            capture=calibration_settings(CAPTURE, NUMERICS["synthetic"]),
            calibration_tokens=config["synthetic_calibration_tokens"],
            numerics={key: NUMERICS[key] for key in ("synthetic", "threads")},
            code=code_version("mi_oracle.dictionaries.synthetic"),
        script:
            "../scripts/calibrate_synthetic_dictionaries.py"

    rule build_synthetic_dictionaries:
        input:
            calibration=layout.calibration_dir(),
        output:
            directory(synthetic_dir("{set}")),
        log:
            layout.log_path("build_synthetic_dictionaries", "{set}"),
        benchmark:
            layout.benchmark_path("build_synthetic_dictionaries", "{set}")
        priority: 50
        conda:
            ENV
        threads: NUMERICS["threads"]
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            definition=lambda wildcards: SETS[wildcards.set]["synthetic"],
            numerics={key: NUMERICS[key] for key in ("synthetic", "threads")},
            code=code_version("mi_oracle.dictionaries.synthetic"),
        script:
            "../scripts/build_synthetic_dictionaries.py"


checkpoint resolve_dictionary_set:
    input:
        unpack(curation_inputs),
    output:
        manifest=manifest_path("{set}"),
        files=directory(dictionary_files_dir("{set}")),
    log:
        layout.log_path("resolve_dictionary_set", "{set}"),
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        definition=lambda wildcards: SETS[wildcards.set],
        # a references-only config encodes nothing: only the references' layers are resolved
        layers=lambda wildcards: SETS[wildcards.set].get("layers", None if CAPTURING else []),
        capture_layers=CAPTURE["layers"] if CAPTURING else [],
        references=lambda wildcards: references_of_set(wildcards.set),
        local_hashes=lambda wildcards: content_hashes(curation_inputs(wildcards).get("local", [])),
        local_roots=config["local_roots"],
        code=code_version("mi_oracle.dictionaries.resolve"),
    script:
        "../scripts/resolve_dictionary_set.py"
