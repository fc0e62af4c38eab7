"""Start a workflow job's own interpreter in its numerics, so a portable step needs no second one.

A portable step's settings are read when torch and glibc load. A job whose adapter calls
:func:`enter` before importing anything heavy replaces its interpreter (``os.execv``: same
process, same arguments, same log) with one started in the pinned environment; the step then
runs in place (:meth:`Numerics.run` sees the marker), instead of importing torch in the job
only to start a child that imports it again.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import mi_oracle
from mi_oracle.errors import NumericsError
from mi_oracle.numerics.mode import MODE_VARIABLE, Numerics

PACKAGE_ROOT = str(Path(mi_oracle.__file__).resolve().parents[1])


def process_environment(numerics: Numerics) -> dict[str, str]:
    """This process's environment with ``numerics``' settings and this checkout's package first."""
    env = numerics.environment(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    return env


def enter(numerics: Numerics) -> None:
    """Return in this interpreter when it already runs in ``numerics`` (or native ones are asked),
    else restart it with ``numerics``' environment and this checkout's package first."""
    if numerics.mode == "native" or os.environ.get(MODE_VARIABLE) == numerics.marker:
        return
    if not sys.argv or not Path(sys.argv[0]).is_file():
        raise NumericsError(f"cannot restart {sys.argv[:1]} in {numerics.mode} numerics: not a script file")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], process_environment(numerics))
