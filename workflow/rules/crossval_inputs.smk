"""What the cross-validation and peer rules read: the first shard, the peers, the other run."""

CROSSVAL = config["crossval"]


# The cross-checks read the capture plan's first shard, which every plan has: its name is known
# without asking the plan's checkpoint. No cross-validation or peer job asks a checkpoint: each
# reads every captured point of the first shard (one capture job writes them all) and derives
# which of them a set encodes from the manifests it reads. A job that asks two checkpoints in
# turn can be left with input <TBD> when its own output is the target (issue 40).
FIRST_SHARD = layout.shard_name(0)
FIRST_SHARD_ACTIVATIONS = [activation_path(hook, layer, FIRST_SHARD) for hook, layer in POINTS]


PEERS = CROSSVAL["peers"]
# as configured (relative to the workflow's folder): a param that stays the same when folders move
PEER_PYTHON = PEERS["python"]
PEER_SCRIPTS = Path(workflow.basedir) / "workflow" / "peers"


def peer_script(name):
    """A peer's script, relative to the workdir when the workflow lies inside it (a moved clone
    keeps its inputs' names)."""
    return relative_to_workdir(PEER_SCRIPTS / name, Path.cwd())


# peer name -> its output folder, for the peers the config runs
PEER_DIRS = {
    peer: layout.peer_dir(RUN, peer)
    for peer, key in (("circuit-tracer", "circuit_tracer"), ("nnsight", "nnsight"))
    if PEERS[key]
}


def peer_capture_job():
    """What a capture peer traces: the first prompts of the first shard, at every captured point."""
    return {
        "model_dir": model_dir(),
        "tokens": str(layout.tokens_file(tokens_dir(), FIRST_SHARD)),
        "n_prompts": CROSSVAL["capture_prompts"],
        "layers": sorted(CAPTURE["layers"]),
        "hooks": list(CAPTURE["hooks"]),
    }


def sets_inputs():
    """Every set's manifest and files, and the synthetic sets' folders."""
    return {
        "manifests": [manifest_path(name) for name in SETS],
        "files": [dictionary_files_dir(name) for name in SETS],
        "synthetic": [synthetic_dir(name) for name in SYNTHETIC],
    }


def first_shard_points():
    """What a job derives each set's (layer, input file, target file) of the first shard from."""
    return {
        "hooks": list(CAPTURE["hooks"]),
        "layers": sorted(CAPTURE["layers"]),
        "run": RUN,
        "shard": FIRST_SHARD,
    }


def peer_nnsight_inputs(wildcards):
    """The script, the model and the tokens."""
    return {"script": peer_script("nnsight_peer.py"), "model": model_dir(), "tokens": tokens_dir()}


def peer_circuit_tracer_inputs(wildcards):
    """Every set's manifest and files, the first shard's activations, the transcoder references it
    re-encodes, the model and the tokens."""
    return {
        "script": peer_script("circuit_tracer_peer.py"),
        "model": model_dir(),
        "tokens": tokens_dir(),
        **sets_inputs(),
        "activations": FIRST_SHARD_ACTIVATIONS,
        "references": sorted({folder for folder in reference_folders().values()}),
    }


def crossval_capture_inputs(wildcards):
    """The model, the token tables, every captured point of the first shard, and the capture peers' outputs."""
    return {
        "model": model_dir(),
        "tokens": tokens_dir(),
        "activations": FIRST_SHARD_ACTIVATIONS,
        "peers": list(PEER_DIRS.values()),
    }


def crossval_encoder_inputs(wildcards):
    """Every set's manifest and files, the first shard's features and activations, the peer's folder."""
    return {
        **sets_inputs(),
        "features": [features_dir(name, FIRST_SHARD) for name in SETS],
        "activations": FIRST_SHARD_ACTIVATIONS,
        "peers": [PEER_DIRS[peer] for peer in ("circuit-tracer",) if peer in PEER_DIRS],
    }


def crossval_encoder_sets():
    """Per set: its manifest, first-shard features folder and check file."""
    return {
        name: {
            "manifest": manifest_path(name),
            "features": features_dir(name, FIRST_SHARD),
            "output": layout.encoder_check_path(RUN, name),
        }
        for name in SETS
    }


def compare_run_files(wildcards):
    """The other run's first-shard activations and features the devices section compares (none
    when crossval.compare_run is null): files from an earlier run, inputs no rule here makes."""
    other = CROSSVAL["compare_run"]
    if other is None:
        return []
    activations = [layout.activation_path(other, hook, layer, FIRST_SHARD) for hook, layer in POINTS]
    return activations + [layout.features_dir(other, name, FIRST_SHARD) for name in SETS]


def candidates_folder():
    """The folder of candidate references (None when none is configured)."""
    if CROSSVAL["candidates"] is None:
        return None
    return local_input(CROSSVAL["candidates"], "crossval.candidates")


def crossval_candidates():
    """Every candidate reference, one input each ([] when no folder is configured)."""
    return [] if candidates_folder() is None else json_files_in(candidates_folder())
