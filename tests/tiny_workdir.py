"""A tiny workflow's working directory the reliability and provenance tests share: a tiny Gemma 2,
a local transcoder set (GemmaScope NPZ per layer), a forward reference, and folders of committed
and candidate references; run to the end once, then copied for each test (timestamps kept)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml

from tests.builders import WORDS, save_tiny_causal_lm
from tests.conftest import run_snakemake, write_config
from tests.dictionary_files import gemma_scope_npz

D_MODEL, D_SAE, N_LAYERS, RUN = 32, 16, 3, "t"
REFERENCE = "forward_reference"
TARGETS = ("all", "results/reports/reference_check.json")


def tiny_workdir(workdir: Path, peers_can_load: bool = False) -> dict:
    """Write the model, prompts and local set into ``workdir``; return the config that reads them.
    ``peers_can_load``: name a tokenizer class the peers' transformers 4.57 knows (transformers 5
    writes TokenizersBackend for a tokenizer made from a tokenizers object; hub checkpoints name
    a class both load)."""
    model = save_tiny_causal_lm(
        workdir / "models" / "tiny", "gemma2", hidden_size=D_MODEL, num_hidden_layers=N_LAYERS
    )
    if peers_can_load:
        tokenizer_config = json.loads((model / "tokenizer_config.json").read_text())
        tokenizer_config["tokenizer_class"] = "PreTrainedTokenizerFast"
        (model / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    prompts = [" ".join(WORDS[(i * 3 + j) % len(WORDS)] for j in range(3 + i % 7)) for i in range(24)]
    (workdir / "prompts.txt").write_text("\n".join(prompts) + "\n")
    for layer in range(N_LAYERS):
        gemma_scope_npz(workdir / "tc" / f"layer_{layer}" / "params.npz", D_MODEL, D_SAE, seed=layer)
    curation = {
        "model_kind": "transcoder_set",
        "feature_input_hook": "ln2.hook_normalized",
        "feature_output_hook": "hook_mlp_out",
        "transcoders": [f"layer_{layer}/params.npz" for layer in range(N_LAYERS)],
    }
    (workdir / "tc" / "config.yaml").write_text(yaml.safe_dump(curation, sort_keys=False))
    (workdir / "committed").mkdir()
    (workdir / "candidates").mkdir()
    return {
        "models": {"tiny": {"source": "local", "path": "models/tiny"}},
        "local_roots": ["."],
        "prompts": {"path": "prompts.txt"},
        "capture": {
            "run": RUN,
            "hooks": ["ln2_normalized", "mlp_out"],
            "layers": [0, 2],
            "compression": "none",
            "threads": 1,
        },
        "numerics": {"synthetic": "portable", "references": "portable", "threads": 1},
        "dictionaries": [{"name": "local", "curation": "tc/config.yaml"}],
        "references": {
            "committed": "committed",
            "items": [
                {
                    "name": REFERENCE,
                    "kind": "forward",
                    "schema_version": "0.1.12",
                    "prompts": ["the capital of"],
                }
            ],
        },
        "crossval": {"candidates": "candidates"},
    }


def run_to_the_end(workdir: Path, config: dict) -> Path:
    """Write ``config``, make its references, commit them and offer them as candidates, then run
    everything (the report and the reference check included)."""
    configfile = write_config(workdir / "config.yaml", config)
    run_snakemake(workdir, configfile, "references")
    for folder in ("committed", "candidates"):
        for reference in (workdir / "results" / "references" / "portable").glob("*/*.json"):
            shutil.copy2(reference, workdir / folder)
    run_snakemake(workdir, configfile, *TARGETS)
    return workdir


def copy_of(finished: Path, destination: Path) -> Path:
    """The finished workdir copied elsewhere, timestamps kept (as ``cp -a`` or a move would)."""
    shutil.copytree(finished, destination, symlinks=True)
    return destination
