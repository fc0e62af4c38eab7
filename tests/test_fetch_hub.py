"""Source hub: pinned, hash-checked downloads through huggingface_hub, against a stand-in hub."""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import hub_env, read_provenance, run_fetch, run_snakemake, write_config

REPO = "google/gemma-2-2b"


def hub_model(revision: str = "main", repo: str = REPO) -> dict:
    return {"name": "gemma-2-2b", "source": "hub", "repo": repo, "revision": revision}


def folder_files(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


@pytest.mark.slow
def test_snakemake_fetches_a_pinned_commit_and_records_every_hash(hub, tiny_gemma2, tmp_path):
    published = folder_files(tiny_gemma2)
    old = hub.add_repo(REPO, published, revision="v1.0")
    newer = dict(published, **{"config.json": published["config.json"].replace(b"{", b'{"note": 1,', 1)})
    hub.add_repo(REPO, newer, revision="main")
    configfile = write_config(tmp_path / "config.yaml", {"model": hub_model("v1.0")})
    env = hub_env(hub, tmp_path / "hf-home")

    target = "resources/models/gemma-2-2b"
    run_snakemake(tmp_path, configfile, target, env=env)

    folder = tmp_path / target
    provenance = read_provenance(folder)
    assert provenance["source"] == "hub"
    assert provenance["requested_revision"] == "v1.0"
    assert provenance["resolved_revision"] == old
    recorded = {f["path"]: f["sha256"] for f in provenance["files"]}
    assert recorded == {name: hashlib.sha256(data).hexdigest() for name, data in published.items()}
    assert all((folder / name).read_bytes() == data for name, data in published.items())
    assert provenance["environment"]["packages"]["huggingface_hub"]
    downloads = [path for method, path in hub.requests if method == "GET" and "/resolve/" in path]
    assert downloads and all(f"/resolve/{old}/" in path for path in downloads)

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.model_type == "gemma2"
    assert tokenizer("the capital of france").input_ids

    again = run_snakemake(tmp_path, configfile, "-n", target, env=env)
    assert "Nothing to be done" in again.stdout + again.stderr


def test_revision_given_as_commit_is_used_as_is(hub, tiny_gemma2, tmp_path):
    commit = hub.add_folder(REPO, tiny_gemma2)
    result = run_fetch(hub_model(commit), tmp_path / "out", hub_env(hub, tmp_path / "hf"))
    assert result.returncode == 0, result.stderr
    assert read_provenance(tmp_path / "out")["resolved_revision"] == commit


def test_corrupted_download_fails_leaves_nothing_and_a_retry_recovers(hub, tiny_gemma2, tmp_path):
    hub.add_folder(REPO, tiny_gemma2)
    hub.corrupt(REPO, "main", "model.safetensors")
    target = tmp_path / "models" / "gemma-2-2b"
    env = hub_env(hub, tmp_path / "hf")

    failed = run_fetch(hub_model(), target, env)
    assert failed.returncode != 0
    assert "HashMismatchError" in failed.stderr
    assert f"{REPO}: model.safetensors has sha256" in failed.stderr
    assert "a retry downloads it again" in failed.stderr
    assert leftovers(tmp_path / "models") == []

    hub.repos[REPO].commits[hub.repos[REPO].refs["main"]]["model.safetensors"].served = None
    retried = run_fetch(hub_model(), target, env)
    assert retried.returncode == 0, retried.stderr
    assert (target / "model.safetensors").read_bytes() == (tiny_gemma2 / "model.safetensors").read_bytes()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        (
            hub_model(repo="google/no-such-model"),
            "google/no-such-model: no such model repository at http://127.0.0.1",
        ),
        (hub_model("v9.9"), f"{REPO} has no revision 'v9.9': set model.revision to a branch, tag or commit"),
    ],
)
def test_missing_repo_or_revision_says_what_to_do(hub, tiny_gemma2, tmp_path, model, expected):
    hub.add_folder(REPO, tiny_gemma2)
    result = run_fetch(model, tmp_path / "out", hub_env(hub, tmp_path / "hf"))
    assert result.returncode != 0
    assert f"FetchError: {expected}" in result.stderr
    assert not (tmp_path / "out").exists()


def test_gated_repo_needs_a_token(hub, tiny_gemma2, tmp_path):
    hub.add_folder(REPO, tiny_gemma2, gated=True, token="hf_secret")
    refused = run_fetch(hub_model(), tmp_path / "out", hub_env(hub, tmp_path / "hf"))
    assert refused.returncode != 0
    assert f"FetchError: {REPO} is gated: accept its terms at" in refused.stderr
    assert "set HF_TOKEN" in refused.stderr

    allowed = run_fetch(hub_model(), tmp_path / "out", hub_env(hub, tmp_path / "hf", HF_TOKEN="hf_secret"))
    assert allowed.returncode == 0, allowed.stderr


def test_unreachable_hub_says_what_to_do(hub, tmp_path):
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env = hub_env(hub, tmp_path / "hf")
    env["HF_ENDPOINT"] = f"http://127.0.0.1:{port}"
    result = run_fetch(hub_model(), tmp_path / "out", env)
    assert result.returncode != 0
    assert f"cannot reach http://127.0.0.1:{port}" in result.stderr
    assert "HF_HUB_OFFLINE=1" in result.stderr


def test_offline_mode_uses_the_cache_and_checks_blob_hashes(hub, tiny_gemma2, tmp_path):
    commit = hub.add_folder(REPO, tiny_gemma2)
    hf_home = tmp_path / "hf"
    assert run_fetch(hub_model(), tmp_path / "online", hub_env(hub, hf_home)).returncode == 0

    offline_env = hub_env(hub, hf_home, HF_HUB_OFFLINE="1")
    hub.stop()
    offline = run_fetch(hub_model(), tmp_path / "offline", offline_env)
    assert offline.returncode == 0, offline.stderr
    provenance = read_provenance(tmp_path / "offline")
    assert provenance["resolved_revision"] == commit
    assert "cache blobs" in provenance["verified_against"]
    assert provenance["files"] == read_provenance(tmp_path / "online")["files"]

    blob = (hf_home / "hub").glob("models--google--gemma-2-2b/blobs/*")
    weights = next(p for p in blob if p.stat().st_size == (tiny_gemma2 / "model.safetensors").stat().st_size)
    weights.write_bytes(weights.read_bytes()[::-1])
    tampered = run_fetch(hub_model(), tmp_path / "tampered", offline_env)
    assert tampered.returncode != 0
    assert "HashMismatchError" in tampered.stderr
    assert not (tmp_path / "tampered").exists()

    empty = run_fetch(hub_model(), tmp_path / "none", hub_env(hub, tmp_path / "empty-hf", HF_HUB_OFFLINE="1"))
    assert empty.returncode != 0
    assert "is not in the Hugging Face cache" in empty.stderr


def test_sharded_repo_downloads_only_the_indexed_shards(hub, tmp_path):
    from safetensors.torch import save_file

    from tests.builders import save_tiny_causal_lm

    folder = save_tiny_causal_lm(tmp_path / "src", "llama")
    from safetensors.torch import load_file

    tensors = load_file(folder / "model.safetensors")
    names = sorted(tensors)
    halves = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != "model.safetensors"}
    for shard, keys in halves.items():
        save_file({k: tensors[k] for k in keys}, tmp_path / shard, metadata={"format": "pt"})
        files[shard] = (tmp_path / shard).read_bytes()
    index = {"metadata": {}, "weight_map": {k: shard for shard, keys in halves.items() for k in keys}}
    files["model.safetensors.index.json"] = json.dumps(index).encode()
    files["consolidated.safetensors"] = (folder / "model.safetensors").read_bytes()
    files["original/params.json"] = b"{}"
    hub.add_repo("meta-llama/Llama-3.2-1B", files)

    result = run_fetch(
        hub_model(repo="meta-llama/Llama-3.2-1B"), tmp_path / "out", hub_env(hub, tmp_path / "hf")
    )
    assert result.returncode == 0, result.stderr
    got = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "consolidated.safetensors" not in got and "original" not in got
    assert {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} <= set(got)
    fetched = [path for method, path in hub.requests if method == "GET" and "/resolve/" in path]
    assert not any("consolidated" in path or "original/" in path for path in fetched)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert model.config.model_type == "llama"


def test_pickle_only_repo_is_refused(hub, tmp_path):
    hub.add_repo(REPO, {"config.json": b'{"model_type": "gemma2"}', "pytorch_model.bin": b"\x80\x04pickle"})
    result = run_fetch(hub_model(), tmp_path / "out", hub_env(hub, tmp_path / "hf"))
    assert result.returncode != 0
    assert "pytorch_model.bin, a pickle format mi-oracle never loads" in result.stderr
    assert not any("pytorch_model.bin" in path for _, path in hub.requests if "/resolve/" in path)
