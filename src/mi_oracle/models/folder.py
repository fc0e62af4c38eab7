"""What a Hugging Face causal-LM folder must hold, and checks that it does."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from mi_oracle.errors import ModelFolderError
from mi_oracle.formats.base import read_safetensors_header
from mi_oracle.json_files import read_json

CONFIG_FILES = ("config.json", "generation_config.json")
SAFETENSORS_INDEX = "model.safetensors.index.json"
SINGLE_SAFETENSORS = "model.safetensors"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
)
TOKENIZER_CORE = ("tokenizer.json", "tokenizer.model", "vocab.json")
PICKLED_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


def select_small_files(names: Iterable[str]) -> list[str]:
    """Config and tokenizer files present among the top-level ``names``."""
    present = set(names)
    return sorted(name for name in (*CONFIG_FILES, *TOKENIZER_FILES) if name in present)


def weight_files(names: Iterable[str], index: dict | None, where: str) -> list[str]:
    """The safetensors files a causal LM needs, given the folder's top-level ``names``.

    ``index`` is the parsed ``model.safetensors.index.json`` when the folder has one.
    """
    present = set(names)
    if index is not None:
        shards = sorted(set(index_weight_map(index, f"{where}/{SAFETENSORS_INDEX}").values()))
        missing = [shard for shard in shards if shard not in present]
        if missing:
            raise ModelFolderError(
                f"{where}/{SAFETENSORS_INDEX}: weight_map names shards that are not there: "
                f"{', '.join(missing)}"
            )
        return [SAFETENSORS_INDEX, *shards]
    if SINGLE_SAFETENSORS in present:
        return [SINGLE_SAFETENSORS]
    pickled = sorted(present.intersection(PICKLED_WEIGHTS))
    hint = (
        f" (it has {', '.join(pickled)}, a pickle format mi-oracle never loads; "
        "convert it to safetensors first)"
        if pickled
        else ""
    )
    raise ModelFolderError(
        f"{where}: no {SINGLE_SAFETENSORS} or {SAFETENSORS_INDEX}; expected safetensors weights{hint}"
    )


def index_weight_map(index: object, where: str) -> dict[str, str]:
    """The ``weight_map`` of a safetensors index, checked to be tensor name -> top-level file."""
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise ModelFolderError(f"{where}: expected a non-empty 'weight_map' object")
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or "/" in shard or "\\" in shard or shard.startswith("."):
            raise ModelFolderError(
                f"{where}: weight_map[{tensor!r}] = {shard!r}; expected a file name in the same folder"
            )
    return weight_map


def required_files(folder: Path) -> list[str]:
    """Check ``folder`` holds a loadable causal LM; return the files it needs, relative names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"{folder}: not a folder")
    names = [entry.name for entry in folder.iterdir() if entry.is_file()]
    if "config.json" not in names:
        raise ModelFolderError(f"{folder}: config.json is missing; expected a Hugging Face model folder")
    config = read_json(folder / "config.json", ModelFolderError)
    if "model_type" not in config:
        raise ModelFolderError(f"{folder}/config.json: key 'model_type' is missing")
    index = read_json(folder / SAFETENSORS_INDEX, ModelFolderError) if SAFETENSORS_INDEX in names else None
    weights = weight_files(names, index, str(folder))
    for name in weights:
        if name.endswith(".safetensors"):
            read_safetensors_header(folder / name, ModelFolderError)
    if not any(name in names for name in TOKENIZER_CORE):
        raise ModelFolderError(f"{folder}: no tokenizer; expected one of {', '.join(TOKENIZER_CORE)}")
    return sorted(set(select_small_files(names)) | set(weights))


def summarize_config(folder: Path) -> dict[str, object]:
    """The few config fields later stages and reports show."""
    config = read_json(Path(folder) / "config.json", ModelFolderError)
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    return {
        "model_type": config.get("model_type"),
        "architectures": config.get("architectures"),
        "num_hidden_layers": text.get("num_hidden_layers"),
        "hidden_size": text.get("hidden_size"),
        "vocab_size": text.get("vocab_size"),
        "dtype": config.get("dtype", config.get("torch_dtype")),
    }
