"""Activation capture: hook locations, padding, early stopping, Parquet output, crash safety."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModelForCausalLM

from mi_oracle.capture.recorder import ActivationRecorder
from mi_oracle.capture.run import length_grouped_batches
from mi_oracle.hook_points import UnsupportedModelError, hf_module_name, locate
from mi_oracle.parquet_files import read_metadata
from tests.capture_helpers import capture, fetched_tiny, reference_forward, tokenize
from tests.small_disk import run_on_small_disk

PROMPTS = [
    "the capital of france is paris",
    "a city",
    "in europe and the river of the city is a river of paris",
]


def assert_rows_close(actual, desired, rel):
    """Per token, max |actual - desired| <= rel * rms(desired): fp32 noise scales with the row."""
    scale = np.sqrt((desired * desired).mean(-1)) + 1e-12
    worst = (np.abs(actual - desired).max(-1) / scale).max()
    assert worst <= rel, f"max |diff| / rms(row) = {worst:.3g} > {rel:g}"


def check_hook_identities(model_dir, prompts, layers, out, rel=1e-5):
    token_rows = tokenize(model_dir, prompts)
    captured = capture(model_dir, token_rows, layers, out)
    gemma = AutoModelForCausalLM.from_pretrained(model_dir).config.model_type.startswith("gemma")
    for pid, ids in enumerate(token_rows):
        model, hidden = reference_forward(model_dir, ids)
        n_layers = model.config.num_hidden_layers
        for layer in layers:
            got = {hook: captured[hook, layer][pid].astype(np.float64) for hook, _ in captured if _ == layer}
            assert_rows_close(got["resid_pre"], hidden[layer], rel)
            if layer < n_layers - 1:
                assert_rows_close(got["resid_post"], hidden[layer + 1], rel)
            else:  # the last hidden state has the final norm applied: resid_post must not be it
                assert np.abs(got["resid_post"] - hidden[layer + 1]).max() > 1e-2
                with torch.no_grad():
                    final_norm = model.model.norm(
                        torch.tensor(got["resid_post"], dtype=torch.float32)
                    ).double()
                np.testing.assert_allclose(final_norm.numpy(), hidden[layer + 1], atol=1e-4, rtol=1e-4)
            assert_rows_close(got["resid_pre"] + got["attn_out"], got["resid_mid"], rel)
            assert_rows_close(got["resid_mid"] + got["mlp_out"], got["resid_post"], rel)
            x = got["resid_mid"]
            norm = (
                model.model.layers[layer].pre_feedforward_layernorm
                if gemma
                else model.model.layers[layer].post_attention_layernorm
            )
            eps = getattr(norm, "eps", getattr(norm, "variance_epsilon", None))
            normalized = x / np.sqrt((x * x).mean(-1, keepdims=True) + eps)
            weight = norm.weight.detach().double().numpy()
            gain = 1.0 + weight if gemma else weight
            np.testing.assert_allclose(got["ln2_normalized"], normalized, atol=1e-5, rtol=1e-5)
            np.testing.assert_allclose(got["mlp_in"], normalized * gain, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("model_type", ["gemma2", "llama", "qwen2", "qwen3", "mistral"])
def test_hooks_match_first_principles_on_tiny_models(model_type, tmp_path):
    folder = fetched_tiny(tmp_path, model_type)
    check_hook_identities(folder, PROMPTS, [0, 1, 2], tmp_path / "out")


@pytest.mark.slow
def test_hooks_match_first_principles_on_gemma_3_270m(embedded_workdir, tmp_path):
    folder = embedded_workdir / "resources" / "models" / "gemma-3-270m"
    long_prompt = " ".join(["The river runs through the old city and under seven stone bridges."] * 45)
    prompts = ["The capital of France is", long_prompt]
    # batched and single passes differ by fp32 noise (~2e-5 of a row after 9 layers)
    check_hook_identities(folder, prompts, [0, 8, 17], tmp_path / "out", rel=1e-4)


def test_forward_stops_after_the_deepest_layer(tmp_path):
    folder = fetched_tiny(tmp_path, "llama")
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    fired = []
    model.model.layers[2].register_forward_hook(lambda *a: fired.append("layer 2"))
    model.model.norm.register_forward_hook(lambda *a: fired.append("final norm"))
    model.lm_head.register_forward_hook(lambda *a: fired.append("lm head"))
    recorder = ActivationRecorder(model.model.layers, "llama", [("resid_post", 1), ("mlp_out", 0)])
    ids = torch.tensor([[2, 5, 6, 7]])
    with torch.no_grad():
        values = recorder.run(model.model, input_ids=ids, attention_mask=torch.ones_like(ids))
        assert fired == []
        recorder.remove()
        full = model.model(input_ids=ids, output_hidden_states=True).hidden_states
    assert fired == ["layer 2", "final norm"]
    assert torch.equal(values["resid_post", 1], full[2])


def test_padding_never_written_and_batches_bounded(tmp_path):
    folder = fetched_tiny(tmp_path, "gemma2")
    rows = tokenize(folder, PROMPTS)
    captured = capture(folder, rows, [1], tmp_path / "out", batch_tokens=16)
    assert {pid: v.shape[0] for pid, v in captured["resid_post", 1].items()} == {
        i: len(r) for i, r in enumerate(rows)
    }
    lengths = [5, 1, 9, 9, 3, 2]
    batches = list(length_grouped_batches(lengths, 18, max_padding=0.99))
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert all(max(lengths[i] for i in b) * len(b) <= 18 or len(b) == 1 for b in batches)


def test_batches_bound_each_rows_padding():
    lengths = [42, 6, 40, 7, 38, 30, 8, 33, 6, 41]
    batches = list(length_grouped_batches(lengths, 4096, max_padding=0.2))
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert [[lengths[i] for i in b] for b in batches] == [[42, 41, 40, 38], [33, 30], [8, 7], [6, 6]]
    computed = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert computed == 42 * 4 + 33 * 2 + 8 * 2 + 6 * 2  # 262 positions for 251 tokens
    everything = list(length_grouped_batches(lengths, 4096, max_padding=0.99))
    assert len(everything) == 1  # the token budget alone: 42 x 10 positions for 251 tokens
    assert [len(b) for b in length_grouped_batches(lengths, 4096, max_padding=0.0)] == [1] * 8 + [2]


def test_batched_equals_each_prompt_alone(tmp_path):
    folder = fetched_tiny(tmp_path, "qwen3")
    rows = tokenize(folder, PROMPTS)
    together = capture(folder, rows, [2], tmp_path / "together")
    for pid, row in enumerate(rows):
        alone = capture(folder, [row], [2], tmp_path / f"alone{pid}")
        for hook in ("resid_post", "ln2_normalized", "attn_out"):
            np.testing.assert_allclose(together[hook, 2][pid], alone[hook, 2][0], atol=1e-5, rtol=1e-5)


def test_unsupported_family_hook_and_layer_are_clear_errors(tmp_path):
    with pytest.raises(UnsupportedModelError, match="model_type 'gpt2' is not supported"):
        locate("gpt2", "resid_post")
    with pytest.raises(UnsupportedModelError, match="hook 'resid_final' is unknown"):
        locate("llama", "resid_final")
    folder = fetched_tiny(tmp_path, "llama")
    model = AutoModelForCausalLM.from_pretrained(folder)
    with pytest.raises(UnsupportedModelError, match=r"layer 3 does not exist: the model has layers 0\.\.2"):
        ActivationRecorder(model.model.layers, "llama", [("resid_post", 3)])
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(UnsupportedModelError, match="model_type 'gpt2' is not supported by the capture"):
        capture(gpt2, [[1, 2, 3]], [0], tmp_path / "out")
    assert hf_module_name("gemma3_text", "mlp_in", 4) == "model.layers.4.pre_feedforward_layernorm:output"
    assert hf_module_name("qwen3", "mlp_in", 4) == "model.layers.4.post_attention_layernorm:output"


def test_parquet_files_carry_provenance_and_read_as_one_table(tmp_path):
    folder = fetched_tiny(tmp_path, "gemma2")
    provenance = json.loads((folder / "provenance.json").read_text())
    out = tmp_path / "out"
    capture(folder, tokenize(folder, PROMPTS), [0, 2], out, row_group_rows=5)
    path = out / "hook=mlp_in" / "layer=2" / "part-00000.parquet"
    meta = read_metadata(path)
    assert meta["hook"] == "mlp_in" and meta["layer"] == 2
    assert meta["transformer_lens"] == "blocks.2.mlp.hook_in"
    assert meta["hf_module"] == "model.layers.2.pre_feedforward_layernorm:output"
    assert meta["model"]["source"] == "local" and meta["model"]["name"] == "gemma2"
    weights = {f["path"]: f["sha256"] for f in provenance["files"] if f["path"] == "model.safetensors"}
    assert meta["model"]["weights_sha256"] == weights
    assert meta["stored_dtype"] == "float32" and meta["device"] == "cpu"
    assert meta["environment"]["packages"]["torch"].startswith("2.13.0")
    assert all(
        rg <= 5
        for rg in (
            pq.ParquetFile(path).metadata.row_group(i).num_rows
            for i in range(pq.ParquetFile(path).metadata.num_row_groups)
        )
    )
    assert pq.read_schema(path).field("activation").type.list_size == 32

    (out / "tokens.parquet").unlink()
    dataset = ds.dataset(out, format="parquet", partitioning="hive")
    table = dataset.to_table()
    n_tokens = sum(len(r) for r in tokenize(folder, PROMPTS))
    assert table.num_rows == n_tokens * 7 * 2
    import duckdb
    import pandas as pd
    import polars as pl

    assert len(pd.read_parquet(out)) == table.num_rows
    glob = str(out / "**" / "*.parquet")
    assert pl.scan_parquet(glob, hive_partitioning=True).select(pl.len()).collect().item() == table.num_rows
    count = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}', hive_partitioning = true)").fetchall()[
        0
    ][0]
    assert count == table.num_rows
    per_hook = duckdb.sql(
        f"SELECT hook, count(*) FROM read_parquet('{glob}', hive_partitioning = true) "
        "WHERE layer = 2 GROUP BY hook"
    ).fetchall()
    assert dict(per_hook) == {hook: n_tokens for hook in dict(per_hook)} and len(per_hook) == 7


def open_writers(tmp_path, d_model=4, buffer_rows=3, n_buffers=2):
    from mi_oracle.capture.writer import ShardWriters, activation_schema

    outputs = {("resid_post", 0): tmp_path / "hook=resid_post" / "layer=0" / "part-00000.parquet"}
    schemas = {key: activation_schema(d_model, {"hook": "resid_post"}) for key in outputs}
    return ShardWriters(outputs, schemas, 10, "none", buffer_rows=buffer_rows, n_buffers=n_buffers)


def test_streamed_points_keep_only_the_indexed_rows_in_batch_order(tmp_path):
    padded = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(2, 3, 4)
    with open_writers(tmp_path, buffer_rows=4, n_buffers=1) as writers:
        for batch in range(5):  # one buffer, reused for every point of every batch
            index = torch.tensor([0, 3, 4]) if batch % 2 else torch.tensor([1, 2])
            ids = np.full(len(index), batch)
            writers.start_batch(ids, index.numpy() % 3, ids, index)
            writers.put(("resid_post", 0), padded + 100 * batch)
    table = pq.read_table(tmp_path / "hook=resid_post" / "layer=0" / "part-00000.parquet")
    assert table["prompt_id"].to_pylist() == [0, 0, 1, 1, 1, 2, 2, 3, 3, 3, 4, 4]
    expected = [
        padded.reshape(-1, 4)[index] + 100 * batch
        for batch, index in enumerate([[1, 2], [0, 3, 4], [1, 2], [0, 3, 4], [1, 2]])
    ]
    np.testing.assert_array_equal(
        np.stack(table["activation"].to_numpy(zero_copy_only=False)), torch.cat(expected)
    )


def test_a_batch_larger_than_the_buffers_is_refused(tmp_path):
    with (
        pytest.raises(ValueError, match="4 real tokens exceeds buffer_rows=3"),
        open_writers(tmp_path) as writers,
    ):
        writers.start_batch(np.zeros(4), np.zeros(4), np.zeros(4), torch.arange(4))
    assert list(tmp_path.rglob("*.parquet*")) == []


def test_a_failed_write_surfaces_and_leaves_no_file(tmp_path):
    value = torch.ones(1, 3, 4)
    # a fractional prompt id cannot fill the int64 column: the writer thread fails
    with pytest.raises(pa.ArrowInvalid), open_writers(tmp_path) as writers:
        for prompt_ids in (np.arange(3), np.array([0.5, 1.5, 2.5])):
            writers.start_batch(prompt_ids, np.arange(3), np.arange(3), torch.arange(3))
            writers.put(("resid_post", 0), value)
        writers.put(("resid_post", 0), value)  # waits for the failed write, then raises its error
        writers.put(("resid_post", 0), value)
    assert list(tmp_path.rglob("*.parquet*")) == []


def test_a_non_finite_activation_is_refused_naming_file_row_and_column(tmp_path):
    from mi_oracle.errors import DataFileError

    values = torch.ones(1, 3, 4)
    values[0, 2, 1] = float("inf")  # row 2 of the second batch: row 5 of the file
    expected = r"part-00000\.parquet: row 5, column activation\[1\] is inf"
    with pytest.raises(DataFileError, match=expected), open_writers(tmp_path, buffer_rows=3) as writers:
        for batch in range(2):
            index = torch.tensor([0, 1, 2])
            writers.start_batch(np.full(3, batch), np.arange(3), np.zeros(3), index)
            writers.put(("resid_post", 0), values if batch else torch.zeros(1, 3, 4))
    assert not [p for p in tmp_path.rglob("*") if p.is_file()], "a partial file was left behind"


def test_byte_stream_split_with_zstd_is_what_the_file_says_and_reads_back_bit_exact(tmp_path):
    from mi_oracle.capture.writer import ShardWriters, activation_schema

    rows = torch.randn(1, 64, 32) * torch.logspace(-3, 4, 32)  # residual-like: many magnitudes
    tables = {}
    for compression, encoding in (("none", "plain"), ("zstd", "byte_stream_split")):
        path = tmp_path / encoding / "part-00000.parquet"
        schemas = {"p": activation_schema(32, {"hook": "resid_post"})}
        with ShardWriters(
            {"p": path}, schemas, 64, compression, buffer_rows=64, n_buffers=1, float_encoding=encoding
        ) as writers:
            writers.start_batch(np.zeros(64), np.arange(64), np.zeros(64), torch.arange(64))
            writers.put("p", rows)
        column = pq.ParquetFile(path).metadata.row_group(0).column(3)
        assert column.path_in_schema == "activation.list.element"
        assert ("BYTE_STREAM_SPLIT" in column.encodings) == (encoding == "byte_stream_split")
        assert column.compression == compression.upper().replace("NONE", "UNCOMPRESSED")
        tables[encoding] = (pq.read_table(path), path.stat().st_size)
    plain, split = tables["plain"], tables["byte_stream_split"]
    assert split[0].equals(plain[0]) and split[1] < plain[1]
    np.testing.assert_array_equal(np.stack(split[0]["activation"].to_numpy(zero_copy_only=False)), rows[0])


ENOSPC_SCRIPT = """
import json, sys, numpy as np, torch
from pathlib import Path
from mi_oracle.capture.writer import ShardWriters, activation_schema
root = Path(sys.argv[1])
outputs = {(h, 0): root / f"hook={h}" / "layer=0" / "part-00000.parquet" for h in ("a", "b", "c")}
schemas = {key: activation_schema(256, {"hook": key[0]}) for key in outputs}
try:
    with ShardWriters(outputs, schemas, 64, "none", buffer_rows=64, n_buffers=2) as writers:
        for batch in range(400):  # 3 points x 400 x 64 rows x 1 KiB: far more than the 4 MiB disk
            writers.start_batch(np.zeros(64), np.arange(64), np.zeros(64), torch.arange(64))
            for key in outputs:
                writers.put(key, torch.randn(1, 64, 256))
    error = None
except Exception as caught:
    error = f"{type(caught).__name__}: {caught}"
print(json.dumps({"error": error, "left": sorted(str(p) for p in root.rglob("*") if p.is_file())}))
"""


def test_a_full_disk_fails_naming_the_file_and_leaves_nothing_behind(tmp_path):
    """A real ENOSPC: a 4 MiB tmpfs mounted in a private mount namespace (``tests.small_disk``)."""
    outcome = run_on_small_disk(tmp_path, "4m", ENOSPC_SCRIPT)
    disk = tmp_path / "disk"
    assert outcome["left"] == [], outcome
    assert outcome["error"].startswith("DataFileError: ") and "the disk is full" in outcome["error"]
    assert f"{disk}/hook=" in outcome["error"] and "No space left on device" in outcome["error"]


def test_several_writer_threads_keep_each_files_rows_in_order_and_a_failure_leaves_nothing(tmp_path):
    from mi_oracle.capture.writer import ShardWriters, activation_schema
    from mi_oracle.errors import DataFileError

    keys = [(hook, layer) for hook in ("resid_pre", "resid_post") for layer in (0, 1)]

    def writers(folder, n_buffers):
        outputs = {key: folder / f"hook={key[0]}" / f"layer={key[1]}" / "part-00000.parquet" for key in keys}
        schemas = {key: activation_schema(4, {"hook": key[0]}) for key in keys}
        return outputs, ShardWriters(
            outputs, schemas, 5, "zstd", buffer_rows=3, n_buffers=n_buffers, writer_threads=3
        )

    padded = torch.arange(12, dtype=torch.float32).reshape(1, 3, 4)
    outputs, shard = writers(tmp_path / "good", n_buffers=2)
    with shard:
        for batch in range(20):
            index = torch.tensor([0, 2]) if batch % 2 else torch.tensor([1])
            ids = np.full(len(index), batch)
            shard.start_batch(ids, index.numpy(), ids, index)
            for n, key in enumerate(keys):
                shard.put(key, padded + 1000 * n + batch)
    for n, key in enumerate(keys):
        table = pq.read_table(outputs[key])
        expected = [
            padded.reshape(3, 4)[[0, 2] if batch % 2 else [1]] + 1000 * n + batch for batch in range(20)
        ]
        assert table["prompt_id"].to_pylist() == [b for b in range(20) for _ in range(2 if b % 2 else 1)]
        np.testing.assert_array_equal(
            np.stack(table["activation"].to_numpy(zero_copy_only=False)), torch.cat(expected)
        )

    bad = padded.clone()
    bad[0, 1, 3] = float("nan")
    outputs, shard = writers(tmp_path / "bad", n_buffers=5)
    failing = r"layer=1/part-00000\.parquet: row 4, column activation\[3\]"
    with pytest.raises(DataFileError, match=failing), shard:
        for batch in range(6):
            shard.start_batch(np.full(3, batch), np.arange(3), np.zeros(3), torch.arange(3))
            for key in keys:
                shard.put(key, bad if key == ("resid_post", 1) and batch == 1 else padded)
    assert not [p for p in (tmp_path / "bad").rglob("*") if p.is_file()], "a partial file was left behind"
