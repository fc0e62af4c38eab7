"""Stand-ins for the real targets' hub repositories: the model's real architecture with small
sizes, and dictionaries under the real repository names, file paths, formats and config files."""

from __future__ import annotations

from pathlib import Path

import yaml

from mi_oracle.dictionaries.locations import parse_hf_uri
from tests.builders import save_tiny_causal_lm
from tests.dictionary_files import clt_split, gemma_scope_npz, plt_bundle
from tests.hub_standin import StandInHub

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "candle-mi"
# A copy of ../shared/fixtures/candle-mi/gemma-scope-transcoders.config.yaml (frozen upstream snapshot).
GEMMA_CURATION_FIXTURE = FIXTURES / "gemma-scope-transcoders.config.yaml"
GEMMA_CURATION_REPO = "mntss/gemma-scope-transcoders"
GEMMA_WEIGHTS_REPO = "google/gemma-scope-2b-pt-transcoders"
GEMMA_SAE_REPO = "google/gemma-scope-2b-pt-res"
GEMMA_SAE_PATH = "layer_0/width_16k/average_l0_105/params.npz"
LLAMA_PLT_REPO = "mntss/transcoder-Llama-3.2-1B"
QWEN_CLT_REPO = "bluelightai/clt-qwen3-1.7b-base-20k"
D_MODEL, D_SAE = 32, 48
# The capture truncates at capture.max_length (1024 in the configs): the tiny models take as many.
POSITIONS = 1024


def gemma_scope_uris() -> list[str]:
    """The 26 transcoder URIs of the frozen mntss/gemma-scope-transcoders config.yaml."""
    uris = yaml.safe_load(GEMMA_CURATION_FIXTURE.read_text())["transcoders"]
    assert len(uris) == 26
    return uris


def publish_gemma_2_2b(hub: StandInHub, work: Path) -> dict[str, str]:
    """google/gemma-2-2b (26 layers), the seeds' residual SAE and the Gemma Scope transcoder set."""
    model = save_tiny_causal_lm(
        work / "model", "gemma2", num_hidden_layers=26, hidden_size=D_MODEL, max_position_embeddings=POSITIONS
    )
    commits = {"model": hub.add_folder("google/gemma-2-2b", model)}
    commits["curation"] = hub.add_repo(
        GEMMA_CURATION_REPO, {"config.yaml": GEMMA_CURATION_FIXTURE.read_bytes()}
    )
    weights = work / "weights"
    for layer, uri in enumerate(gemma_scope_uris()):
        gemma_scope_npz(weights / parse_hf_uri(uri, "fixture").path, D_MODEL, D_SAE, seed=layer)
    commits["weights"] = hub.add_folder(GEMMA_WEIGHTS_REPO, weights)
    sae = gemma_scope_npz(work / "sae" / GEMMA_SAE_PATH, D_MODEL, D_SAE, seed=99)
    commits["sae"] = hub.add_repo(GEMMA_SAE_REPO, {GEMMA_SAE_PATH: sae.read_bytes()})
    return commits


def publish_curated_set(hub: StandInHub, repo: str, folder: Path, curation: dict) -> str:
    """Publish ``folder`` (the weights) with its circuit-tracer ``config.yaml``; return the commit."""
    (folder / "config.yaml").write_text(yaml.safe_dump(curation, sort_keys=False))
    return hub.add_folder(repo, folder)


def publish_llama_3_2_1b(hub: StandInHub, work: Path) -> dict[str, str]:
    """meta-llama/Llama-3.2-1B (16 layers) and mntss's per-layer transcoders (PltBundle, bf16)."""
    model = save_tiny_causal_lm(
        work / "model", "llama", num_hidden_layers=16, hidden_size=D_MODEL, max_position_embeddings=POSITIONS
    )
    commits = {"model": hub.add_folder("meta-llama/Llama-3.2-1B", model)}
    folder = work / "plt"
    for layer in range(16):
        plt_bundle(folder / f"layer_{layer}.safetensors", D_MODEL, D_SAE, seed=layer)
    curation = {
        "model_name": "meta-llama/Llama-3.2-1B",
        "model_kind": "transcoder_set",
        "feature_input_hook": "mlp.hook_in",
        "feature_output_hook": "mlp.hook_out",
        "transcoders": [f"hf://{LLAMA_PLT_REPO}/layer_{layer}.safetensors" for layer in range(16)],
    }
    commits["plt"] = publish_curated_set(hub, LLAMA_PLT_REPO, folder, curation)
    return commits


def publish_qwen3_1_7b(hub: StandInHub, work: Path) -> dict[str, str]:
    """Qwen/Qwen3-1.7B-Base (28 layers) and BlueLightAI's JumpReLU CLT (W_enc_l / W_dec_l, bf16)."""
    model = save_tiny_causal_lm(
        work / "model", "qwen3", num_hidden_layers=28, hidden_size=D_MODEL, max_position_embeddings=POSITIONS
    )
    commits = {"model": hub.add_folder("Qwen/Qwen3-1.7B-Base", model)}
    folder = work / "clt"
    for layer in range(28):
        clt_split(folder, layer, 28, D_MODEL, D_SAE, jump=True)
    curation = {
        "model_name": "Qwen/Qwen3-1.7B-Base",
        "model_kind": "cross_layer_transcoder",
        "feature_input_hook": "hook_resid_mid",
        "feature_output_hook": "hook_mlp_out",
    }
    commits["clt"] = publish_curated_set(hub, QWEN_CLT_REPO, folder, curation)
    return commits
