"""What the cross-validation and peer rules read: the first shard, the peers, the other run."""

CROSSVAL = config["crossval"]


def first_shard():
    """The first shard of the capture plan (the cross-validation reads its tokens)."""
    return planned_shards()[0]


PEERS = CROSSVAL["peers"]
PEER_PYTHON = str(peer_python(PEERS["python"], Path(workflow.basedir)))
PEER_SCRIPTS = Path(workflow.basedir) / "workflow" / "peers"
# peer name -> its output folder, for the peers the config runs
PEER_DIRS = {
    peer: layout.peer_dir(peer)
    for peer, key in (("circuit-tracer", "circuit_tracer"), ("nnsight", "nnsight"))
    if PEERS[key]
}


def peer_capture_job(wildcards):
    """What a capture peer traces: the first prompts of the first shard, at every captured point."""
    return {
        "model_dir": str(Path(model_dir()).resolve()),
        "tokens": str(layout.tokens_file(Path(tokens_dir()).resolve(), first_shard())),
        "n_prompts": CROSSVAL["capture_prompts"],
        "layers": sorted(CAPTURE["layers"]),
        "hooks": list(CAPTURE["hooks"]),
    }


def peer_nnsight_inputs(wildcards):
    """The script, the model and the tokens; asked through the capture plan's checkpoint (the job
    reads its first shard), so the DAG waits for the plan as crossval_capture does."""
    first_shard()
    return {"script": str(PEER_SCRIPTS / "nnsight_peer.py"), "model": model_dir(), "tokens": tokens_dir()}


def peer_circuit_tracer_inputs(wildcards):
    """Every set's manifest and files, the input activations of each encoded layer (first shard),
    the transcoder references it re-encodes, the model and the tokens."""
    inputs = {
        "script": str(PEER_SCRIPTS / "circuit_tracer_peer.py"),
        "model": model_dir(),
        "tokens": tokens_dir(),
        "manifests": [manifest_path(name) for name in SETS],
        "files": [dictionary_files_dir(name) for name in SETS],
        "synthetic": [synthetic_dir(name) for name in SYNTHETIC],
        "activations": sorted(
            {inputs for name in SETS for _, inputs, _ in encoding_files(name, first_shard())}
        ),
        "references": [
            reference_path(name) for name, item in REFERENCE_ITEMS.items() if item["kind"] in ("plt", "clt")
        ],
    }
    return inputs


def crossval_capture_inputs(wildcards):
    """The model, the token tables, every captured point of the first shard, and the capture peers' outputs."""
    shard = first_shard()
    return {
        "model": model_dir(),
        "tokens": tokens_dir(),
        "activations": [activation_path(hook, layer, shard) for hook, layer in POINTS],
        "peers": list(PEER_DIRS.values()),
    }


def crossval_encoder_inputs(wildcards):
    """Every set's manifest and files, and the first shard's features and input activations."""
    shard = first_shard()
    return {
        "manifests": [manifest_path(name) for name in SETS],
        "files": [dictionary_files_dir(name) for name in SETS],
        "synthetic": [synthetic_dir(name) for name in SYNTHETIC],
        "features": [features_dir(name, shard) for name in SETS],
        "activations": sorted({inputs for name in SETS for _, inputs, _ in encoding_files(name, shard)}),
        "peers": [PEER_DIRS[peer] for peer in ("circuit-tracer",) if peer in PEER_DIRS],
    }


def crossval_encoder_sets(wildcards):
    """Per set: its manifest, first-shard features folder, (layer, input file) pairs and check file."""
    shard = first_shard()
    return {
        name: {
            "manifest": manifest_path(name),
            "features": features_dir(name, shard),
            "points": [[layer, inputs] for layer, inputs, _ in encoding_files(name, shard)],
            "output": layout.encoder_check_path(name),
        }
        for name in SETS
    }


def compare_run_files(wildcards):
    """The other run's first-shard activations and features the devices section compares (none
    when crossval.compare_run is null): files from an earlier run, inputs no rule here makes."""
    other = CROSSVAL["compare_run"]
    if other is None:
        return []
    shard = first_shard()
    activations = [layout.activation_path(other, hook, layer, shard) for hook, layer in POINTS]
    return activations + [layout.features_dir(other, name, shard) for name in SETS]


def candidates_folder():
    """The folder of candidate references (None when none is configured)."""
    if CROSSVAL["candidates"] is None:
        return None
    return local_input(CROSSVAL["candidates"], "crossval.candidates")


def crossval_candidates():
    """Every candidate reference, one input each ([] when no folder is configured)."""
    return [] if candidates_folder() is None else json_files_in(candidates_folder())
