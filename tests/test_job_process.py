"""A job entering portable numerics restarts its own interpreter in place (same process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mi_oracle.numerics.mode import GLIBC_HWCAPS, MODE_VARIABLE

SCRIPT = """
import json, os, sys
print(json.dumps({{"stage": "before", "pid": os.getpid()}}), flush=True)
from mi_oracle.numerics.job_process import enter
from mi_oracle.numerics.mode import Numerics
numerics = Numerics({mode!r}, 2)
enter(numerics)
import torch
from mi_oracle.hardware import mkl_branch
seen = numerics.run(lambda: {{
    "capability": torch.backends.cpu.get_cpu_capability(),
    "mkl_branch": mkl_branch(),
    "threads": torch.get_num_threads(),
    "glibc": os.environ.get("GLIBC_TUNABLES"),
}})
print(json.dumps({{"stage": "after", "pid": os.getpid(), "argv": sys.argv[1:], **seen}}), flush=True)
"""


def run_job(tmp_path: Path, mode: str) -> list[dict]:
    script = tmp_path / "job.py"
    script.write_text(SCRIPT.format(mode=mode), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != MODE_VARIABLE}
    done = subprocess.run(
        [sys.executable, str(script), "an argument"], env=env, capture_output=True, text=True, check=True
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_a_portable_job_restarts_itself_once_in_the_pinned_kernels(tmp_path):
    lines = run_job(tmp_path, "portable")
    # one restart: the script's first line runs twice, in the same process, then the step once
    assert [line["stage"] for line in lines] == ["before", "before", "after"]
    assert len({line["pid"] for line in lines}) == 1
    after = lines[-1]
    assert after["argv"] == ["an argument"]
    assert (after["capability"], after["mkl_branch"], after["threads"]) == ("DEFAULT", "COMPATIBLE", 2)
    assert GLIBC_HWCAPS in after["glibc"]


def test_a_native_job_runs_on_without_restarting(tmp_path):
    lines = run_job(tmp_path, "native")
    assert [line["stage"] for line in lines] == ["before", "after"]
    assert lines[-1]["capability"] != "DEFAULT" or os.environ.get("ATEN_CPU_CAPABILITY") == "default"
    assert lines[-1]["threads"] == 2


def test_only_a_script_can_be_restarted():
    code = (
        "from mi_oracle.numerics.job_process import enter\n"
        "from mi_oracle.numerics.mode import PORTABLE\n"
        "enter(PORTABLE)"
    )
    env = {k: v for k, v in os.environ.items() if k != MODE_VARIABLE}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode != 0
    assert "cannot restart ['-c'] in portable numerics: not a script file" in done.stderr


@pytest.fixture(autouse=True)
def _package_importable(monkeypatch):
    src = str(Path(__file__).resolve().parents[1] / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])))
