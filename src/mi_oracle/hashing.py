"""File digests: sha256 for content, git's blob sha1 for what the hub calls a blob id, and the data
files' content hash (BLAKE3 where the ``blake3`` package is installed, sha256 before it)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

try:
    import blake3
except ImportError:  # pragma: no cover - blake3 is a dependency; a bare machine still records sha256
    blake3 = None

_CHUNK = 8 * 1024 * 1024
# The content hashes a data file's sidecar may name, the first one the one new sidecars record.
# BLAKE3 reads at about memory speed on one core (sha256: about 1.5 GB/s); sha256 stays readable.
CONTENT_ALGORITHMS = ("blake3", "sha256") if blake3 is not None else ("sha256",)
DEFAULT_CONTENT_ALGORITHM = CONTENT_ALGORITHMS[0]
KNOWN_CONTENT_ALGORITHMS = ("blake3", "sha256")


@dataclass(frozen=True)
class FileDigest:
    """Size and digests of one file."""

    size: int
    sha256: str
    git_sha1: str

    def matches(self, expected: str) -> bool:
        """True when ``expected`` (a sha256 or a git blob sha1, hex) names this content."""
        expected = expected.lower()
        return expected in (self.sha256, self.git_sha1)


def digest_file(path: Path) -> FileDigest:
    """Read ``path`` once and return its size, sha256 and git blob sha1."""
    path = Path(path)
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    git_sha1 = hashlib.sha1(f"blob {size}\0".encode())
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            sha256.update(block)
            git_sha1.update(block)
    return FileDigest(size=size, sha256=sha256.hexdigest(), git_sha1=git_sha1.hexdigest())


def sha256_file(path: Path) -> str:
    """The sha256 of a file, hex."""
    sha256 = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(_CHUNK):
            sha256.update(block)
    return sha256.hexdigest()


def content_digest(data: memoryview | bytes, algorithm: str, threads: int = 1) -> str:
    """The hex digest of ``data`` (any buffer, e.g. a mapped file) with a content algorithm.

    ``threads`` > 1 hashes on that many threads (BLAKE3 only; the digest is the same).
    """
    if algorithm == "sha256":
        return hashlib.sha256(data).hexdigest()
    if algorithm != "blake3":
        raise ValueError(f"content hash {algorithm!r}: expected one of {', '.join(KNOWN_CONTENT_ALGORITHMS)}")
    if blake3 is None:
        raise ModuleNotFoundError("the blake3 package is not installed (pip install blake3)")
    return blake3.blake3(data, max_threads=max(1, threads)).hexdigest()
