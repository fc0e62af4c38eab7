"""Run a script against a real full disk: a small tmpfs in a private mount namespace.

``unshare --map-root-user --mount`` needs no root where user namespaces are enabled, as on
every machine this project runs on. The script prints one JSON line last; it is returned.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


def run_on_small_disk(folder: Path, size: str, script: str, *arguments: str) -> dict:
    """Mount a ``size`` tmpfs (e.g. ``4m``) at ``folder/disk``, run ``script`` with the disk's path
    and ``arguments``, and return the JSON of its last output line."""
    disk = folder / "disk"
    disk.mkdir()
    path = folder / "fill.py"
    path.write_text(script)
    words = " ".join(shlex.quote(str(word)) for word in (sys.executable, path, disk, *arguments))
    command = f"mount -t tmpfs -o size={size} tmpfs {shlex.quote(str(disk))} && {words}"
    assert shutil.which("unshare"), "util-linux unshare is needed to mount a small disk"
    result = subprocess.run(
        ["unshare", "--map-root-user", "--mount", "sh", "-c", command], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])
