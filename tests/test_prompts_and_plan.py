"""Prompt sets in three formats, their errors, and the token-count sharding."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mi_oracle.capture.plan import make_plan, split_into_shards
from mi_oracle.capture.prompts import PromptSetError, read_prompts
from mi_oracle.layout import PLAN_FILE
from tests.capture_helpers import fetched_tiny

PROMPTS = ["the capital of france", "is paris", "a city in europe"]


def test_three_formats_give_the_same_prompts(tmp_path):
    (tmp_path / "p.txt").write_text("\n".join(PROMPTS) + "\n\n")
    (tmp_path / "p.jsonl").write_text(
        "\n".join(json.dumps({"text": p, "id": i}) for i, p in enumerate(PROMPTS))
    )
    pq.write_table(pa.table({"body": PROMPTS}), tmp_path / "p.parquet")
    assert read_prompts(tmp_path / "p.txt").texts == PROMPTS
    assert read_prompts(tmp_path / "p.jsonl").texts == PROMPTS
    assert read_prompts(tmp_path / "p.parquet", text_field="body").texts == PROMPTS


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad.jsonl", '{"text": "ok"}\n{"text": \n', r"bad\.jsonl:2: not valid JSON"),
        (
            "bad.jsonl",
            '{"text": "ok"}\n{"body": "x"}\n',
            r"bad\.jsonl:2: expected a non-empty string under key 'text'",
        ),
        ("empty.txt", "\n\n", r"empty\.txt: no prompts"),
        ("p.csv", "a,b\n", r"p\.csv: unknown prompt-set format '\.csv'"),
    ],
)
def test_bad_prompt_sets_name_the_file_and_line(tmp_path, name, content, expected):
    (tmp_path / name).write_text(content)
    with pytest.raises(PromptSetError, match=expected):
        read_prompts(tmp_path / name)


def test_lines_split_on_newlines_only_and_raw_separators_stay_in_the_prompt(tmp_path):
    text = "a\u2028b\x0cc\r\n\nsecond line\u0085end\n"
    (tmp_path / "p.txt").write_text(text, encoding="utf-8", newline="")
    assert read_prompts(tmp_path / "p.txt").texts == ["a\u2028b\x0cc", "second line\u0085end"]
    record = json.dumps({"text": "x\u2028y"}, ensure_ascii=False)  # valid JSON with a raw U+2028
    (tmp_path / "p.jsonl").write_text(record + "\n" + record + "\n", encoding="utf-8")
    assert read_prompts(tmp_path / "p.jsonl").texts == ["x\u2028y", "x\u2028y"]


def test_blank_lines_are_skipped_and_reported_with_each_prompts_line(tmp_path):
    (tmp_path / "p.txt").write_text("first\n\n  \nsecond\nthird\n", encoding="utf-8")
    prompts = read_prompts(tmp_path / "p.txt")
    assert prompts.texts == ["first", "second", "third"]
    assert prompts.sources == [1, 4, 5] and prompts.blank_lines == [2, 3]
    trailing = tmp_path / "q.txt"
    trailing.write_text("first\nsecond\n\n", encoding="utf-8")
    assert read_prompts(trailing).blank_lines == [3]


def test_the_plan_reports_blank_lines_and_maps_ids_to_lines(tmp_path):
    model = fetched_tiny(tmp_path, "llama")
    (tmp_path / "p.txt").write_text("the capital\n\nis paris\n", encoding="utf-8")
    settings = {"max_length": 8, "add_special_tokens": True, "shard_tokens": 100}
    plan = make_plan(model, tmp_path / "p.txt", settings, "text", tmp_path / "plan")
    assert plan["prompt_set"]["n_blank_lines_skipped"] == 1
    assert plan["prompt_set"]["blank_lines_skipped"] == [2] and plan["prompt_set"]["renumbered"] is True
    tokens = pq.read_table(tmp_path / "plan" / "part-00000.parquet").to_pydict()
    assert tokens["prompt_id"] == [0, 1] and tokens["source_line"] == [1, 3]
    assert tokens["text"] == ["the capital", "is paris"]


def test_invalid_utf8_names_the_file_and_line(tmp_path):
    (tmp_path / "p.txt").write_bytes(b"fine\nalso fine\nbad \xff byte\n")
    with pytest.raises(PromptSetError, match=r"p\.txt:3: not valid UTF-8 \(byte 19 of the file"):
        read_prompts(tmp_path / "p.txt")


def test_parquet_without_the_column_names_the_columns(tmp_path):
    pq.write_table(pa.table({"body": PROMPTS}), tmp_path / "p.parquet")
    with pytest.raises(PromptSetError, match=r"no column 'text'; columns are body"):
        read_prompts(tmp_path / "p.parquet")
    with pytest.raises(PromptSetError, match="prompt set not found"):
        read_prompts(tmp_path / "missing.txt")


def test_shards_hold_consecutive_prompts_of_about_the_token_count():
    assert split_into_shards([5, 5, 5, 5, 5], 10) == [[0, 1], [2, 3], [4]]
    assert split_into_shards([30, 2, 2], 10) == [[0], [1, 2]]
    assert split_into_shards([1] * 4, 100) == [[0, 1, 2, 3]]


def test_plan_records_tokenization_and_truncation(tmp_path):
    model = fetched_tiny(tmp_path, "llama")
    (tmp_path / "p.txt").write_text("\n".join([*PROMPTS, " ".join(["paris"] * 30)]))
    settings = {"max_length": 8, "add_special_tokens": True, "shard_tokens": 10}
    plan = make_plan(model, tmp_path / "p.txt", settings, "text", tmp_path / "tokens")
    tokens = pq.read_table(tmp_path / "tokens").to_pydict()
    assert tokens["prompt_id"] == [0, 1, 2, 3]
    assert tokens["truncated"] == [False, False, False, True]
    assert max(tokens["n_tokens"]) == 8 and all(ids[0] == 2 for ids in tokens["token_ids"])
    assert plan["tokenization"]["n_truncated"] == 1 and plan["tokenization"]["starts_with_bos"] is True
    assert plan["n_tokens"] == sum(tokens["n_tokens"])
    assert [s["shard"] for s in plan["shards"]] == ["00000", "00001", "00002"]
    assert sorted(p.stem for p in (tmp_path / "tokens").glob("part-*.parquet")) == [
        "part-00000",
        "part-00001",
        "part-00002",
    ]
    assert json.loads((tmp_path / "tokens" / PLAN_FILE).read_text()) == plan
