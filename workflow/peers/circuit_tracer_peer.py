"""circuit-tracer as an independent peer, run in its own virtual environment (never mi-oracle's).

Reads a job description (JSON) written by mi-oracle and answers with circuit-tracer's own
loaders, encoders and nnsight-backed model only:

* ``references/<name>.json``: each transcoder reference's residuals encoded by circuit-tracer,
  in the reference schema (candle-mi's), so the project grades it like any candidate;
* ``features/<set>.npz``: circuit-tracer's encoding of the captured activations, per layer;
* ``capture.npz``: the hooks circuit-tracer's nnsight mapping knows, traced on the first prompts.

Usage: python circuit_tracer_peer.py JOB.json OUT_DIR
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from circuit_tracer.transcoder.cross_layer_transcoder import load_clt
from circuit_tracer.utils.hf_utils import load_transcoders

torch.set_grad_enabled(False)


def say(message: str) -> None:
    print(f"[circuit-tracer peer {time.strftime('%H:%M:%S')}] {message}", flush=True)


def load_set(spec: dict, scratch: Path):
    """The set through circuit-tracer's loaders: ``load_transcoders`` for per-layer transcoders,
    ``load_clt`` for a cross-layer transcoder (its files linked into one folder, as it expects)."""
    files = {int(layer): paths for layer, paths in spec["files"].items()}
    hooks = {
        "feature_input_hook": spec["feature_input_hook"],
        "feature_output_hook": spec["feature_output_hook"],
    }
    if spec["model_kind"] == "cross_layer_transcoder":
        folder = scratch / spec["set"]
        folder.mkdir(parents=True)
        for paths in files.values():
            for path in paths:
                (folder / Path(path).name).symlink_to(Path(path).resolve())
        return load_clt(str(folder), scan=spec["set"], device="cpu", dtype=torch.float32, **hooks)
    if sorted(files) != list(range(len(files))):
        raise SystemExit(
            f"{spec['set']}: circuit-tracer needs a transcoder for every layer, got {sorted(files)}"
        )
    config = {
        "model_kind": "transcoder_set",
        "transcoders": [files[layer][0] for layer in sorted(files)],
        # circuit-tracer picks its GemmaScope NPZ loader only for repositories named gemma-scope
        "repo_id": "gemma-scope (local files)" if spec["schema"] == "GemmaScopeNpz" else spec["set"],
        "scan": spec["set"],
        **hooks,
    }
    return load_transcoders(config, device="cpu", dtype=torch.float32, lazy_encoder=False)


def top_active(acts: torch.Tensor) -> tuple[int, list[dict]]:
    """n_active and the min(10, n_active) largest activations, largest first, ties to the lower index
    (the reference schema's definition)."""
    values = acts.tolist()
    active = sorted((i for i, v in enumerate(values) if v > 0), key=lambda i: (-values[i], i))
    return len(active), [{"index": i, "activation": values[i]} for i in active[:10]]


def encode_references(job: dict, sets: dict, out: Path) -> None:
    for item in job["references"]:
        reference = json.loads(Path(item["path"]).read_text(encoding="utf-8"))
        transcoder = sets[item["set"]]
        cases = []
        for case in reference["test_cases"]:
            x = torch.tensor(case["residual"], dtype=torch.float32)[None]
            n_active, top = top_active(transcoder.encode_layer(x, case["layer"])[0])
            cases.append(
                {**{k: case[k] for k in ("layer", "seed", "residual")}, "n_active": n_active, "top_10": top}
            )
        document = {
            key: value for key, value in reference.items() if key not in ("test_cases", "environment")
        }
        document.update(
            test_cases=cases,
            torch_version=torch.__version__,
            methodology=f"circuit-tracer {version('circuit-tracer')}: its loaders and encode_layer, fp32 CPU",
        )
        write_json(out / "references" / f"{item['name']}.json", document)
        say(f"{item['name']}: {len(cases)} cases encoded")


def as_float32(column) -> np.ndarray:
    """An activation column as [rows, d_model] float32: float32, float16, or bfloat16 bits (uint16)."""
    values = column.combine_chunks().flatten().to_numpy(zero_copy_only=False)
    if values.dtype == np.uint16:  # bfloat16 stored as its 16 bits
        values = (values.astype(np.uint32) << 16).view(np.float32)
    return values.astype(np.float32).reshape(len(column), -1)


def encode_captured(job: dict, sets: dict, out: Path) -> None:
    for name, spec in job["sets"].items():
        arrays = {}
        for layer, path in spec["activation_files"].items():
            table = pq.read_table(path, columns=["prompt_id", "position", "activation"]).slice(
                0, job["max_tokens"]
            )
            x = torch.from_numpy(as_float32(table["activation"]))
            arrays[f"acts_{layer}"] = sets[name].encode_layer(x, int(layer)).numpy()
            arrays[f"prompt_id_{layer}"] = table["prompt_id"].to_numpy()
            arrays[f"position_{layer}"] = table["position"].to_numpy()
        write_npz(out / "features" / f"{name}.npz", arrays)
        say(f"{name}: layers {sorted(spec['activation_files'], key=int)} encoded")


def capture(job: dict, transcoders, out: Path) -> None:
    """The hooks circuit-tracer's Gemma / Llama / Qwen mapping knows, traced through its nnsight model."""
    from circuit_tracer.replacement_model.replacement_model_nnsight import NNSightReplacementModel
    from circuit_tracer.utils.tl_nnsight_mapping import get_mapping
    from nnsight import save

    spec = job["capture"]
    model = NNSightReplacementModel.from_pretrained_and_transcoders(
        spec["model_dir"], transcoders, device="cpu", dtype=torch.float32
    )
    mapping = get_mapping(model._hf_config.architectures[0]).feature_hook_mapping
    points = [
        (hook, name, layer) for hook, name in spec["hooks"] if name in mapping for layer in spec["layers"]
    ]
    tokens = pq.read_table(spec["tokens"], columns=["prompt_id", "token_ids"]).slice(0, spec["n_prompts"])
    arrays: dict[str, list[np.ndarray]] = {}
    for ids in tokens["token_ids"].to_pylist():
        saved = {}
        with torch.inference_mode(), model.trace(torch.tensor([ids])):
            for hook, name, layer in sorted(points, key=lambda p: p[2]):  # nnsight: in execution order
                pattern, io = mapping[name]
                envoy = model._resolve_attr(model, pattern.format(layer=layer))
                value = envoy.output if io == "output" else envoy.input
                saved[f"{hook}@{layer}"] = save(value)
        for key, value in saved.items():
            arrays.setdefault(key, []).append(value[0].float().numpy())
    write_npz(out / "capture.npz", {key: np.concatenate(parts) for key, parts in arrays.items()})
    say(f"captured {sorted(arrays)} on {len(tokens)} prompts")


def write_json(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def write_npz(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def main(job_path: str, out_dir: str) -> None:
    job = json.loads(Path(job_path).read_text(encoding="utf-8"))
    out = Path(out_dir)
    torch.set_num_threads(int(os.environ.get("PEER_THREADS", "1")))
    say(
        f"circuit-tracer {version('circuit-tracer')}, nnsight {version('nnsight')}, "
        f"transformers {version('transformers')}, torch {torch.__version__}"
    )
    with tempfile.TemporaryDirectory() as scratch:
        sets = {name: load_set(spec, Path(scratch)) for name, spec in job["sets"].items()}
        say(f"loaded {', '.join(sets)}")
        encode_references(job, sets, out)
        encode_captured(job, sets, out)
        if job.get("capture"):
            capture(job, sets[job["capture"]["set"]], out)
    write_json(
        out / "versions.json", {p: version(p) for p in ("circuit-tracer", "nnsight", "transformers", "torch")}
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
