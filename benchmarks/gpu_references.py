"""The candle-mi suite's GPU rows, on checkpoints this script makes itself (no hub needed).

    python benchmarks/gpu_references.py OUT_DIR

1. Every family's tiny checkpoint (tests/family_checkpoints.py): the forward reference made on
   CUDA (fp32) graded against the CPU one with candle-mi's GPU bar (top-10 exact, logits 5e-3).
2. bnb NF4: a tiny Llama quantized by bitsandbytes and saved (a real pre-quantized checkpoint),
   then made into ``bnb_nf4_forward_reference`` by the suite's own code path, twice (the bytes
   must repeat); AWQ and GPTQ: what the suite says this machine lacks.

Writes OUT_DIR/gpu_references.json; without CUDA the CUDA parts say so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from mi_oracle.environment import describe_environment  # noqa: E402
from mi_oracle.models.local_folder import fetch_local  # noqa: E402
from mi_oracle.numerics.mode import Numerics  # noqa: E402
from mi_oracle.references.families import FAMILIES  # noqa: E402
from mi_oracle.references.forward_parity import forward_parity_reference  # noqa: E402
from mi_oracle.references.generate import write_model_references  # noqa: E402
from mi_oracle.references.grading import grade  # noqa: E402
from mi_oracle.references.kinds.longrope import LONGROPE_FIELDS  # noqa: E402
from mi_oracle.references.quantized import missing_for  # noqa: E402
from tests.builders import save_tiny_causal_lm  # noqa: E402
from tests.family_checkpoints import CHECKPOINTS, family_model_dir  # noqa: E402

PROMPTS = ["the capital of france is", "a city in europe"]


def families_on_cuda(work: Path) -> list[dict]:
    """Each family's CUDA reference against its CPU one, graded with the GPU bar."""
    rows = []
    for slug in CHECKPOINTS:
        model = family_model_dir(work, slug)
        longrope = slug == "longrope"  # Phi-3.5's checkpoint: a phi3 longrope reference
        made = {
            device: forward_parity_reference(
                slug,
                FAMILIES["phi3" if longrope else slug],
                PROMPTS,
                model,
                {"device": device, "dtype": "float32", "threads": 1},
                long_text="the river and the city" if longrope else None,
                arm="longrope" if longrope else None,
                fields=LONGROPE_FIELDS if longrope else None,
            )
            for device in ("cpu", "cuda")
        }
        kind = "longrope" if slug == "longrope" else "forward"
        result = grade(made["cpu"], made["cuda"], kind, device="cuda")
        rows.append(
            {"family": slug, "verdict": result.verdict, "moved": result.moved, "failures": result.failures}
        )
    return rows


def bnb_checkpoint(work: Path) -> Path:
    """A tiny Llama quantized to NF4 by bitsandbytes on CUDA and saved pre-quantized, then fetched."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    plain = save_tiny_causal_lm(work / "plain", "llama", initializer_range=0.2)
    config = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
    )
    model = AutoModelForCausalLM.from_pretrained(plain, quantization_config=config, device_map={"": "cuda"})
    model.save_pretrained(work / "nf4")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (work / "nf4" / name).write_bytes((plain / name).read_bytes())
    fetch_local("nf4", str(work / "nf4"), [str(work)], work / "models" / "nf4")
    return work / "models" / "nf4"


def quantized_rows(work: Path) -> dict:
    """bnb NF4 made twice through the suite's code; what AWQ and GPTQ lack here."""
    rows: dict = {scheme: {"missing": missing_for(scheme, "cuda")} for scheme in ("bnb-nf4", "awq", "gptq")}
    if rows["bnb-nf4"]["missing"]:
        return rows
    model = bnb_checkpoint(work)
    item = {
        "name": "bnb_nf4_forward_reference",
        "kind": "quantized",
        "scheme": "bnb-nf4",
        "family": "llama32",
        "prompts": PROMPTS,
    }
    options = {"device": "cuda", "dtype": "float32", "seeds_per_layer": 1}
    made = []
    for attempt in range(2):
        start = time.perf_counter()
        statuses = write_model_references(
            [item], options, model, {}, work / f"bnb-{attempt}", Numerics("native", 1)
        )
        made.append((statuses[item["name"]], round(time.perf_counter() - start, 2)))
    files = [work / f"bnb-{attempt}" / "bnb_nf4_forward_reference.json" for attempt in range(2)]
    document = json.loads(files[0].read_text())
    rows["bnb-nf4"] |= {
        "status": [status for status, _ in made],
        "seconds": [seconds for _, seconds in made],
        "bytes_repeat": files[0].read_bytes() == files[1].read_bytes(),
        "quantization_config": document.get("quantization_config"),
        "top_1": [case["top_10"][0] for case in document["test_cases"]],
    }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    result: dict = {"environment": describe_environment("cuda" if torch.cuda.is_available() else "cpu")}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if torch.cuda.is_available():
            result["families"] = families_on_cuda(work)
        else:
            result["families"] = "skipped: no CUDA device"
        result["quantized"] = quantized_rows(work)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_references.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({key: value for key, value in result.items() if key != "environment"}, indent=2))


if __name__ == "__main__":
    main()
