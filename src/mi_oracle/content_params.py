"""Content hashes as job params, for input files no rule makes (a local dictionary file, a candidate
or committed reference, the prompts): Snakemake reruns a job when an input's mtime is newer or a
param changes, so a file edited with its old mtime kept (``cp -p``, ``rsync -a``) is judged again
only through its hash. Hashes are cached by size, mtime, ctime and inode: any write moves the ctime,
which no copying tool sets back; a moved or copied folder is hashed again, to the same params."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from mi_oracle.atomic import write_text_atomic
from mi_oracle.hashing import sha256_file

CACHE = Path(".snakemake") / "mi-oracle" / "content-hashes.json"


def _stamp(stat: os.stat_result) -> str:
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"


def _read_cache(cache: Path) -> dict[str, list[str]]:
    try:
        value = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a missing or damaged cache only costs a hash
    return value if isinstance(value, dict) else {}


def content_hashes(paths: Iterable[str | Path], cache: Path = CACHE) -> dict[str, str]:
    """The sha256 of each file in ``paths`` (a path that is not a file: ``"missing"``), by path."""
    known = _read_cache(Path(cache))
    hashes, changed = {}, False
    for path in map(str, paths):
        try:
            stamp = _stamp(os.stat(path))
        except OSError:
            hashes[path] = "missing"  # the job's input check names it
            continue
        entry = known.get(os.path.abspath(path))
        if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == stamp):
            entry = [stamp, sha256_file(Path(path))]
            known[os.path.abspath(path)] = entry
            changed = True
        hashes[path] = entry[1]
    if changed:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(Path(cache), json.dumps(known, sort_keys=True))
    return hashes
