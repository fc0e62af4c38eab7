"""The GGUF conversion parses a file's metadata once (``one_parse_per_gguf``)."""

from __future__ import annotations

import mmap
from pathlib import Path

import gguf
import numpy as np
import pytest

from mi_oracle.models.gguf_package import one_parse_per_gguf


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
