"""Dictionary files checked against the sha256 their manifest recorded, before anything reads them,
and a synthetic set's folder against the sha256 its builder recorded, before resolution reads it."""

from __future__ import annotations

from pathlib import Path

from mi_oracle.atomic import write_text_atomic
from mi_oracle.dictionaries.manifest import DictionaryFile, LayerRecord
from mi_oracle.errors import DictionaryError
from mi_oracle.hashing import sha256_file
from mi_oracle.layout import SYNTHETIC_ROOT

FOLDER_HASHES = "_files.sha256"  # in a synthetic set's folder, ``sha256sum -c`` format
REBUILD = "rebuild the set from its source: snakemake --forcerun build_synthetic_dictionaries"


def record_folder_hashes(folder: Path) -> None:
    """Record the sha256 of every file below ``folder`` in its ``_files.sha256``."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != FOLDER_HASHES)
    lines = [f"{sha256_file(path)}  {path.relative_to(folder).as_posix()}" for path in files]
    write_text_atomic(folder / FOLDER_HASHES, "".join(f"{line}\n" for line in lines))


def verify_folder_hashes(folder: Path, what: str) -> None:
    """Refuse synthetic set folder ``folder`` unless every file has the sha256 its builder recorded."""
    folder = Path(folder)
    listing = folder / FOLDER_HASHES
    try:
        lines = listing.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise DictionaryError(
            f"{listing}: the {what} has no recorded hashes ({error.strerror}); {REBUILD}"
        ) from error
    for line in lines:
        recorded, _, name = line.partition("  ")
        path = folder / name
        if len(recorded) != 64 or not name or folder.resolve() not in path.resolve().parents:
            raise DictionaryError(
                f"{listing}: expected '<sha256>  <file in the folder>', got {line!r}; {REBUILD}"
            )
        try:
            actual = sha256_file(path)
        except OSError as error:
            raise DictionaryError(
                f"{path}: the {what} lost a file it was built with ({error.strerror}); {REBUILD}"
            ) from error
        if actual != recorded:
            raise DictionaryError(
                f"{path}: the {what} changed after it was built: sha256 {actual}, recorded {recorded} "
                f"in {listing.name}; {REBUILD}"
            )


def _what_to_do(file: DictionaryFile) -> str:
    """How to get back the bytes the manifest recorded, never by accepting the changed file."""
    if file.repo is not None:
        return (
            "resolve the set again (snakemake --forcerun resolve_dictionary_set): it downloads the "
            "file again and checks it against the hub's hash"
        )
    if Path(file.local_path).parts[: len(Path(SYNTHETIC_ROOT).parts)] == Path(SYNTHETIC_ROOT).parts:
        return REBUILD
    return (
        "restore the file the manifest lists; if the new file is meant, run the workflow again: "
        "resolution reruns on its own when a local dictionary file's content changes"
    )


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
                f"the manifest lists ({error}); {_what_to_do(file)}"
            ) from error
        if actual != file.sha256:
            raise DictionaryError(
                f"{path}: set {set_name}, layer {record.layer}: sha256 is {actual} but the manifest "
                f"recorded {file.sha256}; the file changed after the set was resolved: {_what_to_do(file)}"
            )
        paths.append(path)
    return paths
