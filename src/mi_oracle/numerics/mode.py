"""Run a step in ``native`` or ``portable`` numerics; portable steps run in a pinned child interpreter.

torch's CPU wheels pick MKL, oneDNN and ATen kernels by the CPU (AVX2 or AVX-512, Intel or AMD),
glibc picks libm's FMA or SSE2 variants the same way, and a reduction's order follows the thread
count: the last bits of a result differ between machines, and anything that sorts or picks by
value turns them into different choices. Portable mode pins all of them to code paths every
x86-64 CPU runs the same way. The libraries read these settings when they load, so a portable
step runs in a fresh interpreter started with them, which checks that they took effect
(:func:`verify_portable`) before it computes anything.

This is the project's one portable-numerics mechanism, for workflow jobs and any other caller
alike: a portable step called from a process not already pinned runs in a child interpreter
started with the settings (:func:`run_in_child`; request and result travel as JSON files). A job's
adapter imports nothing that loads torch (the synthetic ones name their step as
``module:function``), so the child costs 0.11 to 0.16 s a job over restarting the job's own
interpreter in place (medians 1.64-1.66 s against 1.50-1.53 s for a job that imports torch,
benchmarks/numerics_mechanism.py and RESULTS.md), and tests and benchmarks take the workflow's
path.

The parent forwards the child's output (logging, progress bars) to its own ``stderr``, which a
rule's log captures; an error the child raised on purpose is raised again in the parent with
its own class and message, anything else as a :class:`NumericsError` naming it.
"""

from __future__ import annotations

import codecs
import importlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import mi_oracle
from mi_oracle import errors
from mi_oracle.atomic import write_json_atomic
from mi_oracle.errors import NumericsError

MODES = ("portable", "native")
MODE_VARIABLE = "MI_ORACLE_NUMERICS"
# glibc >= 2.33 names, then the older *_Usable names (unknown names are ignored)
GLIBC_HWCAPS = "glibc.cpu.hwcaps=" + ",".join(
    f"-{name}{suffix}" for suffix in ("", "_Usable") for name in ("AVX", "AVX2", "FMA", "FMA4", "AVX512F")
)
PINNED_KERNELS = {
    "MKL_CBWR": "COMPATIBLE",  # MKL's reproducible branch, the same on Intel and AMD
    "MKL_DYNAMIC": "FALSE",  # exactly the threads asked for
    "ATEN_CPU_CAPABILITY": "default",  # ATen's kernels without AVX: one vector width everywhere
    "ONEDNN_MAX_CPU_ISA": "SSE41",  # oneDNN's kernels (bf16 matmuls, convolutions)
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Numerics:
    """How a step computes: ``mode`` and the fixed thread count its results depend on."""

    mode: Literal["portable", "native"] = "portable"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise NumericsError(f"numerics mode {self.mode!r}: expected one of {', '.join(MODES)}")
        if self.threads < 1:
            raise NumericsError(f"numerics threads {self.threads}: expected at least 1")

    @property
    def marker(self) -> str:
        return f"{self.mode}:{self.threads}"

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with this mode's settings: kernels pinned (portable) and thread counts fixed."""
        env = dict(base)
        env.update({name: str(self.threads) for name in THREAD_VARIABLES})
        if self.mode == "portable":
            env.update(PINNED_KERNELS)
            tunables = [part for part in env.get("GLIBC_TUNABLES", "").split(":") if part]
            tunables = [part for part in tunables if not part.startswith("glibc.cpu.hwcaps=")]
            env["GLIBC_TUNABLES"] = ":".join([*tunables, GLIBC_HWCAPS])
        env[MODE_VARIABLE] = self.marker
        return env

    def record(self) -> dict[str, Any]:
        """What the step's outputs carry: the same on every machine for the same settings."""
        record: dict[str, Any] = {"mode": self.mode, "threads": self.threads}
        if self.mode == "portable":
            record |= {
                "pinned": dict(PINNED_KERNELS),
                "glibc_tunables": GLIBC_HWCAPS,
                "torch_cpu_capability": "DEFAULT",
                "mkl_branch": "COMPATIBLE",
            }
        return record

    @classmethod
    def of(cls, value: Numerics | Mapping[str, Any]) -> Numerics:
        """``value`` as Numerics (a mapping: its ``mode`` and ``threads``, as JSON carries it)."""
        return value if isinstance(value, Numerics) else cls(value["mode"], int(value["threads"]))

    def run(self, function: Callable[..., Any] | str, **kwargs: Any) -> Any:
        """``function(**kwargs)``: here when this process already runs in this mode, else in a child.

        Native mode runs here, with the thread count set; a portable call from anywhere else
        goes to a fresh interpreter (kwargs and the result travel as JSON; Paths as strings).
        ``function`` may be named ``module:qualname``: a caller that has not imported torch then
        never does (a workflow job's adapter).
        """
        if isinstance(function, str):
            target = function
            if self.mode == "native" or os.environ.get(MODE_VARIABLE) == self.marker:
                function = resolve_target(target)
        else:
            target = f"{function.__module__}:{function.__qualname__}"
        if self.mode == "native":
            from mi_oracle.devices import torch_threads

            with torch_threads(self.threads):
                return function(**kwargs)
        if os.environ.get(MODE_VARIABLE) == self.marker:
            verify_portable(self.threads)
            return function(**kwargs)
        return run_in_child(self, target, kwargs)


PORTABLE = Numerics("portable", 1)


def resolve_target(target: str) -> Callable[..., Any]:
    """The function ``module:qualname`` names."""
    module_name, _, name = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in name.split("."):
        value = getattr(value, part)
    return value


def verify_portable(threads: int) -> None:
    """Fail unless this process runs the pinned kernels on ``threads`` threads (and set torch's count)."""
    import torch

    from mi_oracle.hardware import mkl_branch

    torch.set_num_threads(threads)
    problems = []
    capability = torch.backends.cpu.get_cpu_capability()
    if capability != "DEFAULT":
        problems.append(f"torch dispatches to {capability}, expected DEFAULT (ATEN_CPU_CAPABILITY=default)")
    branch = mkl_branch()
    if torch.backends.mkl.is_available() and branch != "COMPATIBLE":
        problems.append(f"MKL runs the {branch} branch, expected COMPATIBLE (MKL_CBWR=COMPATIBLE)")
    if torch.get_num_threads() != threads:
        problems.append(f"torch runs {torch.get_num_threads()} threads, expected {threads}")
    if problems:
        raise NumericsError(
            "portable numerics did not take effect (set before torch loads?): " + "; ".join(problems)
        )


def numerics_from_config(section: Mapping[str, Any], stage: str) -> Numerics:
    """The Numerics of ``stage`` (``synthetic`` or ``references``) from the config's ``numerics``."""
    return Numerics(mode=section[stage], threads=int(section["threads"]))


PACKAGE_ROOT = str(Path(mi_oracle.__file__).resolve().parents[1])


def process_environment(numerics: Numerics) -> dict[str, str]:
    """This process's environment with ``numerics``' settings and this checkout's package first."""
    env = numerics.environment(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
    return env


def run_in_child(numerics: Numerics, target: str, kwargs: dict[str, Any]) -> Any:
    """Run ``target(**kwargs)`` in a child interpreter started with ``numerics``' environment."""
    with tempfile.TemporaryDirectory(prefix="mi-oracle-numerics-") as scratch:
        request, result = Path(scratch) / "request.json", Path(scratch) / "result.json"
        request.write_text(
            json.dumps({"target": target, "threads": numerics.threads, "kwargs": kwargs}, default=str),
            encoding="utf-8",
        )
        env = process_environment(numerics)
        command = [sys.executable, "-m", "mi_oracle.numerics.mode", str(request), str(result)]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            _forward(process.stdout)
            code = process.wait()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if not result.is_file():
            raise NumericsError(
                f"{target}: the {numerics.mode}-numerics process exited with {code}, no result"
            )
        payload = json.loads(result.read_text(encoding="utf-8"))
    if "error" in payload:
        raise _error(target, payload["error"])
    return payload["result"]


def _forward(stream: Any) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for chunk in iter(lambda: stream.read1(1 << 16), b""):
        sys.stderr.write(decoder.decode(chunk))
        sys.stderr.flush()


def _error_classes(base: type = errors.MiOracleError) -> dict[str, type]:
    """Every MiOracleError subclass by name, those of other modules (e.g. PromptSetError) too."""
    found = {base.__name__: base}
    for subclass in base.__subclasses__():
        found |= _error_classes(subclass)
    return found


def _error(target: str, error: dict[str, str]) -> Exception:
    kind = _error_classes().get(error["type"])
    if kind is not None:
        return kind(error["message"])
    return NumericsError(
        f"{target} failed in the portable-numerics process: {error['type']}: {error['message']}"
    )


def main(request_path: str, result_path: str) -> int:
    """The child: verify the pinned settings, run the target, write its result or its error."""
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    request = json.loads(Path(request_path).read_text(encoding="utf-8"))
    try:
        verify_portable(request["threads"])
        payload = {"result": resolve_target(request["target"])(**request["kwargs"])}
    except errors.MiOracleError as error:
        payload = {"error": {"type": type(error).__name__, "message": str(error)}}
    except Exception as error:
        traceback.print_exc()
        payload = {"error": {"type": type(error).__name__, "message": str(error)}}
    write_json_atomic(Path(result_path), payload, sort_keys=False)
    return 0 if "result" in payload else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
