"""Read what a peer wrote in its own environment (``results/peers/<run>/<peer>/``): its status, its
capture (``capture.npz``), its encodings of captured activations (``features/<set>.npz``) and
its reference-schema outputs (``references/*.json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mi_oracle.errors import DataFileError
from mi_oracle.json_files import read_json
from mi_oracle.peers.launch import STATUS_FILE


def peer_status(folder: Path) -> str:
    """``run``, or why the peer did not run (its environment missing, say)."""
    return read_json(Path(folder) / STATUS_FILE)["status"]


def _arrays(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError) as error:
        raise DataFileError(f"{path}: a peer's output is unreadable ({error})") from error


def peer_capture(folder: Path) -> dict[str, np.ndarray] | str:
    """``{"<hook>@<layer>": rows}`` of a capture peer, or why there is none."""
    status = peer_status(folder)
    return _arrays(Path(folder) / "capture.npz") if status == "run" else status


def peer_features(folder: Path, name: str) -> dict[str, np.ndarray] | str:
    """A peer's encodings of set ``name`` (``acts_<L>``, ``prompt_id_<L>``, ``position_<L>``), or why none."""
    skipped: dict[str, Any] = read_json(Path(folder) / "job.json").get("skipped", {})
    if name in skipped:  # not applicable (an SAE), or not loadable (layers missing)
        return skipped[name]
    status = peer_status(folder)
    if status != "run":
        return status
    path = Path(folder) / "features" / f"{name}.npz"
    if not path.is_file():
        return f"not run: {Path(folder).name} wrote no features for {name}"
    return _arrays(path)


def peer_references(folder: Path) -> Path | str:
    """The folder of a peer's reference-schema outputs, or why there is none."""
    status = peer_status(folder)
    return Path(folder) / "references" if status == "run" else status
