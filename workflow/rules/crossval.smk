rule crossval_capture:
    input:
        unpack(crossval_capture_inputs),
    output:
        layout.capture_check_path(RUN),
    log:
        layout.log_path("crossval_capture", RUN),
    benchmark:
        layout.benchmark_path("crossval_capture", RUN)
    # the longest job the report waits on: first of what is ready, so it ends no run alone
    priority: 30
    conda:
        ENV
    threads: CAPTURE["threads"]
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        points=POINTS,
        prompts=CROSSVAL["capture_prompts"],
        shard=FIRST_SHARD,
        activations=lambda wildcards: layout.activations_dir(RUN),
        peers=PEER_DIRS,
        code=code_version("mi_oracle.crossval.capture"),
    script:
        "../scripts/crossval_capture.py"


# One job for every set: SAELens alone takes about 10 s to import, more than a set's comparison.
rule crossval_encoders:
    input:
        unpack(crossval_encoder_inputs),
    output:
        [layout.encoder_check_path(RUN, name) for name in SETS],
    log:
        layout.log_path("crossval_encoders", RUN),
    benchmark:
        layout.benchmark_path("crossval_encoders", RUN)
    conda:
        ENV
    threads: ENCODING["threads"]
    resources:
        mem_mb=6000,
        runtime=30,
    params:
        sets=crossval_encoder_sets(),
        points=first_shard_points(),
        peers=PEER_DIRS,
        code=code_version("mi_oracle.crossval.encoders"),
    script:
        "../scripts/crossval_encoders.py"


rule crossval_report:
    input:
        capture=layout.capture_check_path(RUN),
        encoders=[layout.encoder_check_path(RUN, name) for name in SETS],
        metrics=[metrics_path(name) for name in SETS],
        references=all_references(),
        native=all_references("native"),
        candidates=crossval_candidates(),
        peers=list(PEER_DIRS.values()),
        compare=compare_run_files,
    output:
        html=report(
            layout.report_path(RUN),
            caption="../report/crossval.rst",
            category="Cross-validation",
        ),
        json=layout.report_path(RUN, "json"),
    log:
        layout.log_path("crossval_report", RUN),
    localrule: True
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        sets=list(SETS),
        references=lambda wildcards: reference_entries("portable"),
        native=lambda wildcards: reference_entries("native"),
        report_only=CROSSVAL["report_only"],
        candidates=lambda wildcards: candidates_folder(),
        candidate_hashes=lambda wildcards: content_hashes(crossval_candidates()),
        peers=PEER_DIRS,
        compare_run=lambda wildcards: (
            [RUN, CROSSVAL["compare_run"], FIRST_SHARD] if CROSSVAL["compare_run"] else None
        ),
        code=code_version("mi_oracle.crossval.report"),
    script:
        "../scripts/crossval_report.py"


rule peer_circuit_tracer:
    input:
        unpack(peer_circuit_tracer_inputs),
    output:
        directory(layout.peer_dir(RUN, "circuit-tracer")),
    log:
        layout.log_path("peer_circuit_tracer", RUN),
    benchmark:
        layout.benchmark_path("peer_circuit_tracer", RUN)
    # the capture and encoder comparisons wait on it: it runs as soon as its inputs exist
    priority: 40
    conda:
        ENV
    threads: ENCODING["threads"]
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        python=PEER_PYTHON,
        points=first_shard_points(),
        references=lambda wildcards: reference_entries("portable"),
        capture=peer_capture_job(),
        code=code_version("mi_oracle.peers.run"),
    script:
        "../scripts/peer_circuit_tracer.py"


rule peer_nnsight:
    input:
        unpack(peer_nnsight_inputs),
    output:
        directory(layout.peer_dir(RUN, "nnsight")),
    log:
        layout.log_path("peer_nnsight", RUN),
    benchmark:
        layout.benchmark_path("peer_nnsight", RUN)
    conda:
        ENV
    threads: CAPTURE["threads"]
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        python=PEER_PYTHON,
        capture=peer_capture_job(),
        code=code_version("mi_oracle.peers.run"),
    script:
        "../scripts/peer_nnsight.py"
