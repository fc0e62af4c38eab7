"""A portable step in a fresh interpreter: the request and result travel as JSON files.

The project's one portable-numerics mechanism, for workflow jobs and any other caller alike: the
libraries read the pinned settings when they load, so the step runs in an interpreter started
with them. A job's adapter names its step as ``module:function`` and never imports torch itself:
the child then costs 0.15 s over restarting the job's own interpreter in place (1.58 s against
1.43 s for a job that imports torch, benchmarks/RESULTS.md), and tests and benchmarks use the
same path as the workflow.

The parent forwards the child's output (logging, progress bars) to its own ``stderr``, which a
rule's log captures; an error the child raised on purpose is raised again in the parent with
its own class and message, anything else as a :class:`NumericsError` naming it.
"""

from __future__ import annotations

import codecs
import json
import logging
import os
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

import mi_oracle
from mi_oracle import errors
from mi_oracle.atomic import write_json_atomic
from mi_oracle.errors import NumericsError
from mi_oracle.numerics.mode import Numerics, resolve_target

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
        command = [sys.executable, "-m", "mi_oracle.numerics.child_process", str(request), str(result)]
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
    from mi_oracle.numerics.mode import verify_portable

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
