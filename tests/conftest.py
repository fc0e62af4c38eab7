"""Shared fixtures: a stand-in hub, tiny models, and a runner for real Snakemake invocations."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.builders import save_tiny_causal_lm
from tests.hub_standin import StandInHub

REPO_ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
# The peers in their own environment cost about 35 s a run: tests about other stages leave them out.
NO_PEERS = {"peers": {"circuit_tracer": False, "nnsight": False}}


@pytest.fixture
def hub():
    """A stand-in hub on 127.0.0.1, stopped after the test."""
    server = StandInHub().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_gemma2(tmp_path_factory) -> Path:
    """A tiny random Gemma 2 folder (safetensors + tokenizer)."""
    return save_tiny_causal_lm(tmp_path_factory.mktemp("tiny-gemma2"), "gemma2")


def hub_env(hub: StandInHub, hf_home: Path, **extra: str) -> dict[str, str]:
    """Environment that points huggingface_hub at the stand-in hub and a private cache."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1", **extra)
    return env


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def snakemake_command(workdir: Path, configfile: Path, *args: str) -> list[str]:
    """The command line that runs the real workflow in ``workdir`` with ``configfile``."""
    return [
        str(SNAKEMAKE),
        "--snakefile",
        str(REPO_ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        "--cores",
        "2",
        *args,
    ]


def run_snakemake(
    workdir: Path, configfile: Path, *args: str, env: dict[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess:
    """Run the real workflow in ``workdir`` with ``configfile``; fail the test with its output."""
    command = snakemake_command(workdir, configfile, *args)
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1200)
    if check and result.returncode != 0:
        pytest.fail(
            f"snakemake failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-8000:]}"
        )
    return result


def run_fetch(
    model: dict, target: Path, env: dict[str, str], roots: tuple[str, ...] = (".",)
) -> subprocess.CompletedProcess:
    """Call mi_oracle's fetch_model in a fresh interpreter, so HF_* variables take effect as in a job."""
    code = (
        "import json, sys; from pathlib import Path; from mi_oracle.models.fetch import fetch_model; "
        "fetch_model(json.loads(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3]))"
    )
    return subprocess.run(
        [sys.executable, "-c", code, json.dumps(model), json.dumps(list(roots)), str(target)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def read_provenance(folder: Path) -> dict:
    return json.loads((folder / "provenance.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def embedded_workdir(tmp_path_factory) -> Path:
    """A working directory where the real workflow has run on the default config (real Gemma 3 270M).

    It holds a copy of config/ and references/, as a user's clone does, since config paths are
    relative to it.
    """
    workdir = tmp_path_factory.mktemp("embedded")
    shutil.copytree(REPO_ROOT / "config", workdir / "config")
    shutil.copytree(REPO_ROOT / "references", workdir / "references")
    run_snakemake(workdir, workdir / "config" / "config.yaml")
    return workdir


def restore_default_run(workdir: Path) -> None:
    """Bring a shared workdir back to an up-to-date default run after a test ran it otherwise."""
    run_snakemake(workdir, workdir / "config" / "config.yaml")
    result = run_snakemake(workdir, workdir / "config" / "config.yaml", "-n")
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.fixture(scope="session")
def family_models(tmp_path_factory) -> dict[str, Path]:
    """A fetched model folder of every family candle-mi checks (tests/family_checkpoints.py), by slug."""
    from tests.family_checkpoints import CHECKPOINTS, family_model_dir

    root = tmp_path_factory.mktemp("families")
    return {slug: family_model_dir(root, slug) for slug in CHECKPOINTS}
