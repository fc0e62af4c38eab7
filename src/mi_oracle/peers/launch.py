"""Run a peer's script in the peer virtual environment, a separate interpreter: its output lands
in a staging folder renamed into place only when the peer succeeded."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mi_oracle.atomic import atomic_directory, write_json_atomic
from mi_oracle.errors import PeerError
from mi_oracle.hashing import digest_file

log = logging.getLogger(__name__)
STATUS_FILE = "status.json"
SETUP_HINT = "`make peers` makes it (README: Quick start)"


def peer_python(configured: str, workflow_dir: Path) -> Path:
    """The peer environment's interpreter: a relative path is relative to the workflow's folder."""
    path = Path(configured)
    return path if path.is_absolute() else workflow_dir / path


def _as_recorded(path: Path) -> str:
    """``path`` relative to the workdir when inside it (links kept: a venv's python is a link)."""
    absolute = Path(os.path.abspath(path))
    return str(absolute.relative_to(Path.cwd())) if absolute.is_relative_to(Path.cwd()) else str(absolute)


def run_peer(
    peer: str,
    python: Path,
    script: Path,
    job: Mapping[str, Any],
    out_dir: Path,
    threads: int,
    idle: str | None = None,
) -> dict[str, Any]:
    """Run ``script JOB OUT`` with ``python``; write ``status.json`` (run or why not) beside its output.
    ``idle``: why the job holds nothing for the peer (it is then not started)."""
    with atomic_directory(Path(out_dir)) as staging:
        write_json_atomic(staging / "job.json", job)
        status = {
            "peer": peer,
            "python": _as_recorded(python),
            "script": _as_recorded(script),
            "script_sha256": digest_file(script).sha256,
        }
        if idle:
            status["status"] = f"not run: {idle}"
            log.info("%s: %s", peer, status["status"])
        elif not python.is_file():
            status["status"] = f"not run: the peer environment {python} does not exist; {SETUP_HINT}"
            log.warning("%s: %s", peer, status["status"])
        else:
            env = {**os.environ, "PEER_THREADS": str(threads), "PYTHONNOUSERSITE": "1"}
            env.pop("PYTHONPATH", None)  # nothing of this environment leaks into the peer's
            log.info("%s: %s %s", peer, python, script)
            result = subprocess.run(
                [str(python), str(script), str(staging / "job.json"), str(staging)],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
                check=False,
            )
            sys.stdout.write(result.stdout)
            if result.returncode != 0:
                tail = "\n".join(result.stdout.splitlines()[-15:])
                raise PeerError(
                    f"{peer} ({script.name} in {python}) failed with exit code {result.returncode}:\n{tail}"
                )
            status["status"] = "run"
        write_json_atomic(staging / STATUS_FILE, status)
    return status
