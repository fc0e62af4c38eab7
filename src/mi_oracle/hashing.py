"""File digests: sha256 for content, git's blob sha1 for what the hub calls a blob id."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 8 * 1024 * 1024


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
