"""Registrations a user adds without touching the package (``MI_ORACLE_PLUGINS=tests.registrations``):
an eleventh forward family, OLMo 2, and a new reference kind, ``logit_lens``."""

from __future__ import annotations

from typing import Any

from mi_oracle.references.families import Family, register_family
from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds import Bars, BuildContext, ReferenceKind, register
from mi_oracle.references.tolerance import Tolerance

TOP_K = 5


class LogitLens(ReferenceKind):
    """Per prompt and layer: the top tokens of the last position's residual read through the final
    norm and the unembedding (nostalgebraist's logit lens)."""

    name = "logit_lens"
    required = ("prompts",)

    def build(self, item: ReferenceItem, context: BuildContext) -> dict[str, Any]:
        import torch
        from transformers import AutoModelForCausalLM

        from mi_oracle.references.numbers import deterministic_torch, f32
        from mi_oracle.references.provenance import ENVIRONMENT_KEY, environment_block, model_record
        from mi_oracle.references.tokenizer import load_tokenizer

        with deterministic_torch(threads=context.settings["threads"]):
            tokenizer = load_tokenizer(context.model_dir)
            model = AutoModelForCausalLM.from_pretrained(context.model_dir, dtype=torch.float32).eval()
            cases = []
            for prompt in item.prompts:
                ids = tokenizer(prompt)["input_ids"]
                with torch.inference_mode():
                    states = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
                    lens = [model.lm_head(model.model.norm(state[0, -1])) for state in states[1:]]
                layers = []
                for layer, logits in enumerate(lens):
                    top = torch.topk(logits, TOP_K)
                    pairs = zip(top.indices.tolist(), top.values.tolist(), strict=True)
                    layers.append({"layer": layer, "top": [{"index": i, "logit": f32(v)} for i, v in pairs]})
                cases.append({"prompt": prompt, "tokens": ids, "layers": layers})
        return {
            "num_layers": model.config.num_hidden_layers,
            "test_cases": cases,
            ENVIRONMENT_KEY: environment_block("cpu", "float32", model=model_record(context.model_dir)),
        }

    def bars(self, device: str = "cpu", scheme: str | None = None) -> Bars:
        return Bars("top-5 indices exact, logits 1e-3", {"*": Tolerance(1e-3)})


register(LogitLens())
register_family(Family("olmo2", "olmo2", traps={"q/k norms": "model_type checked: the norms load with it"}))
