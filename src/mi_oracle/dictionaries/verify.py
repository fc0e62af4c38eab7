"""Dictionary files checked against the sha256 their manifest recorded, before anything reads them."""

from __future__ import annotations

from pathlib import Path

from mi_oracle.dictionaries.manifest import LayerRecord
from mi_oracle.errors import DictionaryError
from mi_oracle.hashing import sha256_file


def verified_layer_files(record: LayerRecord, base: Path, set_name: str) -> list[Path]:
    """The paths of one manifest layer record's files, each checked against its recorded sha256.

    A file changed since resolution (edited in place, replaced, truncated) fails here, naming the
    file and both hashes: outputs can only record the hashes of the bytes they were made from.
    """
    paths = []
    for file in record.files:
        path = Path(base) / file.local_path
        try:
            actual = sha256_file(path)
        except OSError as error:
            raise DictionaryError(
                f"{path}: set {set_name}, layer {record.layer}: cannot read the dictionary file "
                f"the manifest lists ({error}); resolve the set again"
            ) from error
        if actual != file.sha256:
            raise DictionaryError(
                f"{path}: set {set_name}, layer {record.layer}: sha256 is {actual} but the manifest "
                f"recorded {file.sha256}; the file changed after the set was resolved: rerun "
                f"resolution (snakemake --forcerun resolve_dictionary_set) so every output records "
                "what it was made from"
            )
        paths.append(path)
    return paths
