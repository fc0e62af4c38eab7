"""The GGUF conversion parses a file once (``one_parse_per_gguf``), converting as transformers does."""

from __future__ import annotations

import json
import mmap
from pathlib import Path

import gguf
import numpy as np
import pytest

from mi_oracle.models.gguf_package import metadata_once, one_parse_per_gguf, parsed_gguf_value


def write_gguf(path: Path, n_tokens: int) -> Path:
    """A small GGUF with a vocabulary array and one tensor."""
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_token_list([f"tok{i}" for i in range(n_tokens)])
    writer.add_tensor("token_embd.weight", np.arange(12, dtype=np.float32).reshape(3, 4))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_one_reader_per_file_inside_the_block_and_the_original_class_after(tmp_path):
    first, second = write_gguf(tmp_path / "a.gguf", 5), write_gguf(tmp_path / "b.gguf", 7)
    original = gguf.GGUFReader
    with one_parse_per_gguf():
        from gguf import GGUFReader  # how transformers imports it, at call time

        reader = GGUFReader(first)
        assert GGUFReader(str(first)) is reader
        assert GGUFReader(tmp_path / "." / "a.gguf") is reader
        other = GGUFReader(second)
        assert other is not reader
        tokens = reader.fields["tokenizer.ggml.tokens"]
        assert [bytes(tokens.parts[i]).decode() for i in tokens.data] == [f"tok{i}" for i in range(5)]
        assert len(other.fields["tokenizer.ggml.tokens"].data) == 7
        assert type(reader.data) is np.ndarray  # a plain view of the memory map, not a copy
        assert isinstance(reader.data.base, (np.memmap, mmap.mmap))
        np.testing.assert_array_equal(
            np.asarray(reader.tensors[0].data).reshape(3, 4), np.arange(12).reshape(3, 4)
        )
    assert gguf.GGUFReader is original
    assert gguf.GGUFReader(first) is not reader


def test_the_original_class_comes_back_when_the_conversion_fails(tmp_path):
    original = gguf.GGUFReader
    with pytest.raises(FileNotFoundError), one_parse_per_gguf():
        gguf.GGUFReader(tmp_path / "missing.gguf")
    assert gguf.GGUFReader is original


def write_typed_gguf(path: Path) -> Path:
    """A GGUF with one metadata value of each kind transformers converts."""
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_uint32("test.u32", 7)
    writer.add_int64("test.i64", -3)
    writer.add_float32("test.f32", 0.1)
    writer.add_float64("test.f64", 2.5e-7)
    writer.add_bool("test.bool", True)
    writer.add_string("test.str", "héllo ▁world")
    writer.add_array("test.ints", [1, -2, 3])
    writer.add_array("test.floats", [0.5, -1.25])
    writer.add_token_list(["<bos>", "▁the", "", "é"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return path


def test_metadata_values_convert_as_transformers_converts_them(tmp_path):
    from transformers.integrations.ggml import _gguf_parse_value

    fields = gguf.GGUFReader(write_typed_gguf(tmp_path / "typed.gguf")).fields
    fast = parsed_gguf_value(_gguf_parse_value)
    checked = 0
    for key, field in fields.items():
        expected = [_gguf_parse_value(field.parts[i], field.types) for i in field.data]
        actual = [fast(field.parts[i], field.types) for i in field.data]
        assert actual == expected and [type(v) for v in actual] == [type(v) for v in expected], key
        checked += key.startswith(("test.", "tokenizer."))
    assert checked == 9
    with pytest.raises(ValueError, match="expected the first type to indicate an array"):
        fast(np.zeros(1, np.uint8), [4, 8])  # what transformers says about a malformed type list


def test_metadata_only_loads_run_once_and_hand_out_independent_copies(tmp_path):
    calls = []
    answer = {"config": {"model_type": "gemma3", "layers": [1, 2]}, "tokenizer": {"tokens": ["a", "b"]}}

    def load(path, return_tensors=False, model_to_load=None):
        calls.append((path, return_tensors, model_to_load))
        return json.loads(json.dumps(answer))

    cached = metadata_once(load)
    first = cached(tmp_path / "m.gguf", return_tensors=False)
    first["config"]["model_type"] = "edited"
    first["tokenizer"]["tokens"].append("c")
    second = cached(str(tmp_path / "." / "m.gguf"), return_tensors=False)
    assert second == {
        "config": {"model_type": "gemma3", "layers": [1, 2]},
        "tokenizer": {"tokens": ["a", "b"]},
    }
    cached(tmp_path / "m.gguf", return_tensors=True, model_to_load="model")
    assert [c[1:] for c in calls] == [(False, None), (True, "model")]


def test_the_patched_transformers_functions_come_back_after_the_block(tmp_path):
    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    before = (gguf_utils._gguf_parse_value, gguf_utils.load_gguf_checkpoint, gguf.get_tensor_name_map)
    with one_parse_per_gguf():
        assert gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, 2) is gguf.get_tensor_name_map(
            gguf.MODEL_ARCH.GEMMA3, 2
        )
        assert gguf_utils.load_gguf_checkpoint is not before[1]
    assert (gguf_utils._gguf_parse_value, gguf_utils.load_gguf_checkpoint, gguf.get_tensor_name_map) == before
