"""What a synthetic set is (``dictionaries[].synthetic``: schema, kind, hooks, layers, size) and
which calibration tokens its fit reads; the format facts come from its schema's recipe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mi_oracle.errors import DictionaryError
from mi_oracle.formats import SyntheticRecipe, synthetic_recipe, synthetic_schemas
from mi_oracle.parquet_files import read_parquet

LABEL = "SYNTHETIC dictionary built by mi-oracle for testing pipelines: not trained, not for interpretation"


@dataclass(frozen=True)
class SyntheticSet:
    """One synthetic set to build."""

    name: str
    schema: str
    kind: str
    input_hook: str
    output_hook: str
    layers: tuple[int, ...]
    d_sae: int
    target_l0: float
    seed: int

    @property
    def recipe(self) -> SyntheticRecipe:
        """How its schema is written (activation, dtype, skip, listing, cross-layer decoder)."""
        return synthetic_recipe(self.schema)

    @property
    def activation(self) -> str:
        return self.recipe.activation


def plan_set(name: str, spec: Mapping[str, Any], n_layers: int, sae_layers: Sequence[int]) -> SyntheticSet:
    """A SyntheticSet from its config entry: SAEs at ``sae_layers``, transcoders at every layer."""
    schema = spec["schema"]
    if schema not in synthetic_schemas():
        raise DictionaryError(
            f"dictionaries[{name}].synthetic.schema: {schema!r} cannot be written as a synthetic set "
            f"(can: {', '.join(synthetic_schemas())})"
        )
    recipe = synthetic_recipe(schema)
    kind = spec.get("kind", recipe.default_kind)
    if kind == "sae":
        if "sae" not in recipe.hooks:
            sae_schemas = [s for s in synthetic_schemas() if "sae" in synthetic_recipe(s).hooks]
            raise DictionaryError(
                f"dictionaries[{name}].synthetic: SAEs are written as {' or '.join(sae_schemas)} only"
            )
        hooks = (spec.get("hook", recipe.hooks["sae"][0]),) * 2
        layers = tuple(sorted(set(sae_layers)))
        if "input_hook" in spec:
            raise DictionaryError(
                f"dictionaries[{name}].synthetic.input_hook: transcoders only; an SAE reads its hook"
            )
    elif kind in recipe.hooks:
        published_input, output_hook = recipe.hooks[kind]
        hooks = (spec.get("input_hook", published_input), output_hook)
        layers = tuple(range(n_layers))
    else:
        raise DictionaryError(f"dictionaries[{name}].synthetic: schema {schema} cannot be a {kind}")
    d_sae, target = int(spec.get("d_sae", 1024)), float(spec.get("target_l0", 64))
    if not 0 < target < d_sae:
        raise DictionaryError(f"dictionaries[{name}].synthetic.target_l0: {target} must lie in (0, d_sae)")
    return SyntheticSet(name, schema, kind, *hooks, layers, d_sae, target, int(spec.get("seed", 0)))


def calibration_rows(tokens_dir: Path, n_tokens: int) -> list[tuple[int, list[int]]]:
    """``n_tokens`` tokens of whole prompts spread over the capture plan, as (prompt id, token ids)
    in the order taken (the last prompt cut).

    The walk takes every k-th prompt of the plan (k = the plan's tokens / ``n_tokens``, rounded
    up), then every k-th from the next prompt on, and so on, so every part of a plan ordered by
    kind (short prompts, code, long documents) is in the sample; the plan's first tokens alone
    would be its first kind only. Prompts are chosen by position, never by content.
    """
    prompts = []
    for part in sorted(Path(tokens_dir).glob("part-*.parquet")):
        table = read_parquet(part, "tokens table", ["prompt_id", "token_ids"])
        columns = (table.column("prompt_id").to_pylist(), table.column("token_ids").to_pylist())
        prompts += zip(*columns, strict=True)
    stride = max(1, -(-sum(len(tokens) for _, tokens in prompts) // n_tokens))
    rows: list[tuple[int, list[int]]] = []
    total = 0
    for index in (i for start in range(stride) for i in range(start, len(prompts), stride)):
        prompt_id, tokens = prompts[index]
        take = tokens[: n_tokens - total]
        if take:
            rows.append((prompt_id, take))
            total += len(take)
        if total >= n_tokens:
            break
    return rows
