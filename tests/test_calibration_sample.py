"""Which tokens calibrate the synthetic sets: whole prompts spread over the capture plan."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from mi_oracle.dictionaries.synthetic_plan import calibration_rows
from mi_oracle.parquet_files import record_sha256


def write_plan(folder, parts: list[list[int]]) -> None:
    """Token shards like plan_capture's: prompt ids in order, prompt i has ``lengths[i]`` tokens."""
    folder.mkdir()
    prompt_id = 0
    for index, lengths in enumerate(parts):
        ids = list(range(prompt_id, prompt_id + len(lengths)))
        tokens = [[1000 * i + k for k in range(n)] for i, n in zip(ids, lengths, strict=True)]
        path = folder / f"part-{index:05d}.parquet"
        pq.write_table(pa.table({"prompt_id": ids, "token_ids": tokens}), path)
        record_sha256(path)
        prompt_id += len(lengths)


def test_every_kth_prompt_then_the_next_residue_until_the_budget_and_the_last_prompt_cut(tmp_path):
    # 8 short prompts, then 2 long documents: 8 * 4 + 2 * 20 = 72 tokens
    write_plan(tmp_path / "tokens", [[4] * 6, [4, 4, 20, 20]])
    rows = calibration_rows(tmp_path / "tokens", 24)  # k = ceil(72 / 24) = 3
    assert [prompt_id for prompt_id, _ in rows] == [0, 3, 6, 9]
    assert [len(tokens) for _, tokens in rows] == [4, 4, 4, 12]  # the long document cut
    assert rows[3][1] == [9000 + k for k in range(12)]  # a prompt's first tokens, in order
    assert sum(len(tokens) for _, tokens in rows) == 24


def test_the_walk_wraps_to_the_next_residue_and_takes_everything_when_the_budget_allows(tmp_path):
    write_plan(tmp_path / "tokens", [[4] * 6])
    rows = calibration_rows(tmp_path / "tokens", 12)  # k = 2: prompts 0, 2, 4 fill it
    assert [prompt_id for prompt_id, _ in rows] == [0, 2, 4]
    rows = calibration_rows(tmp_path / "tokens", 14)  # k = 2: 0, 2, 4, then 1 (cut to 2)
    assert [(prompt_id, len(tokens)) for prompt_id, tokens in rows] == [(0, 4), (2, 4), (4, 4), (1, 2)]
    rows = calibration_rows(tmp_path / "tokens", 1000)  # k = 1: the whole plan, in order
    assert [prompt_id for prompt_id, _ in rows] == list(range(6))
