"""What the one portable-numerics mechanism costs a workflow job, side by side with the one it replaced.

A job that runs a portable step that imports torch, two ways, each timed as a whole process:

- child (the project's): the job's interpreter names the step (``module:function``) without
  importing torch, and ``Numerics.run`` starts a pinned child interpreter that runs it;
- in place (the mechanism it replaced, rebuilt here as the baseline): the job's interpreter
  restarts itself pinned (``os.execve``, same process) and runs the step itself.

Prints each repeat and the ratio of the medians. ``--repeats`` (default 5).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEP = "def step():\n    import torch\n    return float(torch.ones(3).sum())\n"
CHILD = f"""
import sys
sys.path[:0] = [{str(ROOT / "src")!r}, sys.argv[1]]
from mi_oracle.numerics.mode import Numerics
import mi_oracle.references.generate  # what generate_references' adapter imports
assert Numerics("portable", 1).run("portable_step:step") == 3.0
"""
IN_PLACE = f"""
import os, sys
sys.path[:0] = [{str(ROOT / "src")!r}, sys.argv[1]]
from mi_oracle.numerics.mode import MODE_VARIABLE, Numerics, verify_portable
numerics = Numerics("portable", 1)
if os.environ.get(MODE_VARIABLE) != numerics.marker:
    os.execve(sys.executable, [sys.executable, *sys.argv], numerics.environment(os.environ))
import mi_oracle.references.generate
import portable_step
verify_portable(1)
assert portable_step.step() == 3.0
"""


def timed(script: Path, folder: Path) -> float:
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(folder)}  # the step's module, for the child too
    subprocess.run([sys.executable, str(script), str(folder)], check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="numerics-mechanism-") as scratch:
        folder = Path(scratch)
        (folder / "portable_step.py").write_text(STEP)
        scripts = {"child": folder / "child.py", "in place": folder / "in_place.py"}
        scripts["child"].write_text(CHILD)
        scripts["in place"].write_text(IN_PLACE)
        seconds: dict[str, list[float]] = {name: [] for name in scripts}
        for _ in range(args.repeats):
            for name, script in scripts.items():  # interleaved: both see the same machine load
                seconds[name].append(timed(script, folder))
    for name, values in seconds.items():
        print(
            f"{name}: "
            + ", ".join(f"{value:.2f}" for value in values)
            + f" s (median {statistics.median(values):.2f})"
        )
    child, in_place = (statistics.median(seconds[name]) for name in ("child", "in place"))
    print(f"child / in place: {child / in_place:.2f} (+{child - in_place:.2f} s a job)")


if __name__ == "__main__":
    main()
