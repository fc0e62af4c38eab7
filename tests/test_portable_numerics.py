"""Portable numerics: the synthetic build and every reference kind come out byte-identical under two
kernel environments, as two machines would pick them; native kernels differ (the negative control)."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from mi_oracle.capture.prompts import PromptSetError
from mi_oracle.errors import DictionaryError, NumericsError
from mi_oracle.hardware import hardware_fingerprint
from mi_oracle.layout import reference_provenance_file
from mi_oracle.numerics.mode import GLIBC_HWCAPS, PINNED_KERNELS, Numerics
from tests.builders import WORDS, save_tiny_causal_lm
from tests.conftest import NO_PEERS, run_snakemake, write_config
from tests.reference_checks import reference_in

# What another x86-64 machine may pick: older MKL and OpenBLAS kernels, ATen without AVX, and a
# glibc that sees no FMA (its libm then runs other variants). Every x86-64 CPU has these paths,
# so the pair differs from the defaults on AVX2 and AVX-512 machines alike.
OTHER_MACHINE = {
    "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
    "OPENBLAS_CORETYPE": "Sandybridge",
    "ATEN_CPU_CAPABILITY": "default",
    "GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX2,-FMA",
}
REFERENCES = ["sae_reference", "plt_reference", "clt_reference", "forward_reference"]


def probe(value: int) -> dict:
    """What a portable child sees (run through Numerics.run by module path)."""
    import torch

    from mi_oracle.hardware import mkl_branch

    return {
        "value": value,
        "capability": torch.backends.cpu.get_cpu_capability(),
        "mkl_branch": mkl_branch(),
        "threads": torch.get_num_threads(),
        "glibc": os.environ.get("GLIBC_TUNABLES"),
    }


def fail_with(kind: str) -> None:
    if kind == "dictionary":
        raise DictionaryError("sets/x.yaml: transcoders: expected a list")
    if kind == "prompts":  # a MiOracleError defined outside mi_oracle.errors
        raise PromptSetError("p.txt:3: not valid UTF-8")
    raise ValueError("not a planned error")


def test_environment_pins_kernels_and_threads_and_keeps_other_glibc_tunables():
    env = Numerics("portable", 3).environment({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2", "HOME": "/h"})
    assert {key: env[key] for key in PINNED_KERNELS} == PINNED_KERNELS
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == "3"
    assert env["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{GLIBC_HWCAPS}" and env["HOME"] == "/h"
    native = Numerics("native", 2).environment({})
    assert "MKL_CBWR" not in native and native["OMP_NUM_THREADS"] == "2"
    with pytest.raises(NumericsError, match="expected one of portable, native"):
        Numerics("fast", 1)


def test_a_portable_step_runs_in_a_child_with_the_pinned_kernels_in_effect():
    seen = Numerics("portable", 2).run(probe, value=7)
    assert seen == {
        "value": 7,
        "capability": "DEFAULT",
        "mkl_branch": "COMPATIBLE",
        "threads": 2,
        "glibc": GLIBC_HWCAPS,
    }
    here = probe(0)
    assert here["capability"] != "DEFAULT" or os.environ.get("ATEN_CPU_CAPABILITY") == "default"


def test_errors_in_the_child_come_back_with_their_class_or_named():
    with pytest.raises(DictionaryError, match=r"sets/x\.yaml: transcoders"):
        Numerics("portable", 1).run(fail_with, kind="dictionary")
    with pytest.raises(PromptSetError, match=r"p\.txt:3: not valid UTF-8"):
        Numerics("portable", 1).run(fail_with, kind="prompts")
    with pytest.raises(NumericsError, match=r"fail_with failed .*ValueError: not a planned error"):
        Numerics("portable", 1).run(fail_with, kind="other")


def test_the_hardware_fingerprint_names_cpu_kernels_and_blas_libraries(monkeypatch):
    import torch

    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    fingerprint = hardware_fingerprint("cpu")
    cpuinfo = Path("/proc/cpuinfo").read_text()
    assert fingerprint["cpu"]["vendor"] in cpuinfo and fingerprint["cpu"]["model"] in cpuinfo
    assert set(fingerprint["cpu"]["flags"]) <= set(cpuinfo.split("flags", 1)[1].split("\n", 1)[0].split())
    assert fingerprint["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert fingerprint["mkl_branch"] in ("BRANCH_OFF", "AUTO", "COMPATIBLE")
    apis = {library["internal_api"] for library in fingerprint["blas"]}
    assert {"openblas", "openmp"} <= apis  # numpy's OpenBLAS and torch's OpenMP
    assert fingerprint["kernel_variables"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert fingerprint["libc"].startswith("glibc-") and fingerprint["gpu"] is None


def tiny_reference_workflow(workdir: Path, synthetic: str) -> Path:
    """A tiny Gemma 2 with three synthetic sets (SAE, GemmaScope PLT, CLT) and all four references."""
    save_tiny_causal_lm(workdir / "models" / "tiny", "gemma2", hidden_size=64, num_hidden_layers=3)
    prompts = [" ".join(WORDS[(i * 5 + j) % len(WORDS)] for j in range(4 + i % 9)) for i in range(80)]
    (workdir / "prompts.txt").write_text("\n".join(prompts) + "\n")
    small = {"d_sae": 96, "target_l0": 12}
    config = {
        "models": {"tiny": {"source": "local", "path": "models/tiny"}},
        "local_roots": ["."],
        "prompts": {"path": "prompts.txt"},
        "capture": {"run": "t", "hooks": ["resid_post", "ln2_normalized", "mlp_out"], "layers": [0, 2]},
        "synthetic_calibration_tokens": 400,
        "numerics": {"synthetic": synthetic, "references": "portable", "threads": 1},
        "dictionaries": [
            {"name": "sae", "synthetic": {"schema": "GemmaScopeNpz", "kind": "sae", "seed": 1, **small}},
            {"name": "npz", "synthetic": {"schema": "GemmaScopeNpz", "seed": 2, **small}},
            {
                "name": "clt",
                "synthetic": {
                    "schema": "CltSplitJumpReLU",
                    "seed": 3,
                    "input_hook": "ln2_normalized",
                    **small,
                },
            },
        ],
        "references": {
            "items": [
                {
                    "name": "sae_reference",
                    "kind": "sae",
                    "set": "sae",
                    "layer": 0,
                    "prompt": "the city of paris",
                },
                {"name": "plt_reference", "kind": "plt", "set": "npz"},
                {"name": "clt_reference", "kind": "clt", "set": "clt"},
                {
                    "name": "forward_reference",
                    "kind": "forward",
                    "schema_version": "0.1.12",
                    "prompts": ["the capital of", "a river in"],
                },
            ]
        },
        "crossval": NO_PEERS,
    }
    return write_config(workdir / "config.yaml", config)


def run_workflow(workdir: Path, configfile: Path, machine: dict[str, str], *targets: str) -> Path:
    """``targets`` of the workflow in ``workdir``, with ``machine``'s kernel variables set."""
    run_snakemake(workdir, configfile, *targets, env={**os.environ, **machine})
    return workdir


def synthetic_files(workdir: Path) -> dict[str, bytes]:
    """Every file of every synthetic set (weights, config.yaml, the builder's hashes), and
    provenance without its machine."""
    files = {}
    for path in sorted((workdir / "results" / "synthetic").rglob("*")):
        if path.is_file() and path.name != ".snakemake_timestamp":
            content = path.read_bytes()
            if path.name == "provenance.json":
                document = json.loads(content)
                assert document["environment"]["hardware"]["cpu"]["vendor"]  # the machine is recorded
                document.pop("environment")
                content = json.dumps(document, sort_keys=True).encode()
            if path.name == "_files.sha256":  # provenance.json's hash holds the machine too
                lines = content.decode().splitlines()
                content = "\n".join(line for line in lines if not line.endswith("  provenance.json")).encode()
            files[str(path.relative_to(workdir))] = content
    return files


def reference_files(workdir: Path, native: bool = False) -> dict[str, bytes]:
    numerics = "native" if native else "portable"
    return {name: reference_in(workdir, name, numerics).read_bytes() for name in REFERENCES}


@pytest.mark.slow
def test_portable_outputs_are_byte_identical_under_two_kernel_environments_and_native_ones_are_not(
    tmp_path,
):
    native_targets = ["results/references/native/tiny"]
    machines = {tmp_path / "here": {}, tmp_path / "other": OTHER_MACHINE}
    # the tiny models first, one after the other (torch's seed is global to this process), then
    # both workflows at once: their portable steps use one thread each
    configs = {workdir: tiny_reference_workflow(workdir, "portable") for workdir in machines}
    with ThreadPoolExecutor(2) as pool:
        runs = [
            pool.submit(run_workflow, workdir, configs[workdir], machine, "references", *native_targets)
            for workdir, machine in machines.items()
        ]
        for run in runs:
            run.result()
    here, other = machines
    # a dry run after a change upstream of a checkpoint plans the jobs behind it (it used to crash
    # asking an encoding job's runtime before the set was resolved)
    changed = here / "changed.yaml"
    changed.write_text((here / "config.yaml").read_text().replace("threads: 1", "threads: 2"))
    planned = run_snakemake(here, changed, "-n", env=dict(os.environ))
    assert "build_synthetic_dictionaries" in planned.stdout and "encode_features" in planned.stdout
    assert synthetic_files(here) == synthetic_files(other)
    # config.yaml, provenance.json and _files.sha256 per set; SAE weights at 2 layers, PLT at 3,
    # CLT 2 files at 3
    assert len(synthetic_files(here)) == 3 * 3 + 2 + 3 + 6
    assert reference_files(here) == reference_files(other)

    # what the outputs record: the numerics in the reference, the machine beside it
    plt = json.loads(reference_files(here)["plt_reference"])
    assert plt["environment"]["numerics"]["mode"] == "portable"
    assert plt["environment"]["numerics"]["torch_cpu_capability"] == "DEFAULT"
    assert "hardware" not in plt["environment"]
    provenance = json.loads(
        reference_provenance_file(here / "results/references/portable/tiny", "plt_reference").read_text()
    )
    assert (
        provenance["sha256"]
        == __import__("hashlib").sha256(reference_files(here)["plt_reference"]).hexdigest()
    )
    assert provenance["environment"]["hardware"]["torch_cpu_capability"] == "DEFAULT"
    other_provenance = json.loads(
        reference_provenance_file(other / "results/references/portable/tiny", "plt_reference").read_text()
    )
    assert (
        other_provenance["environment"]["hardware"]["kernel_variables"]["MKL_ENABLE_INSTRUCTIONS"] == "SSE4_2"
    )

    # the negative control: the same pair with native kernels gives other bits
    native_here, native_other = reference_files(here, native=True), reference_files(other, native=True)
    differing = [name for name in REFERENCES if native_here[name] != native_other[name]]
    assert "forward_reference" in differing  # at this size the forward's logits show it surely
    natives = {tmp_path / "native-here": {}, tmp_path / "native-other": OTHER_MACHINE}
    configs = {workdir: tiny_reference_workflow(workdir, "native") for workdir in natives}
    with ThreadPoolExecutor(2) as pool:
        done = [
            pool.submit(run_workflow, workdir, configs[workdir], machine, "results/synthetic/npz")
            for workdir, machine in natives.items()
        ]
        synthetic_here, synthetic_other = (run.result() for run in done)
    assert synthetic_files(synthetic_here) != synthetic_files(synthetic_other)
