"""What an output says made it is what made it: every input tracked, every file verified, corrupt
input refused with its name. One tiny workflow (a local curation YAML, a forward reference checked
against committed and candidate copies) runs once; each test works on a copy of its workdir."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import blake3
import pyarrow.parquet as pq
import pytest
import yaml

from mi_oracle.capture.run import load_recording_model
from mi_oracle.dictionaries.manifest import read_manifest
from mi_oracle.encoding.run import encode_shard
from mi_oracle.errors import DictionaryError, ModelFolderError
from mi_oracle.parquet_files import METADATA_KEY, digest_sidecar
from mi_oracle.references.provenance import model_record
from tests.conftest import NO_PEERS, REPO_ROOT, SNAKEMAKE, run_snakemake, write_config
from tests.dictionary_files import gemma_scope_npz
from tests.tiny_workdir import D_MODEL, D_SAE, REFERENCE, copy_of, run_to_the_end, tiny_workdir

pytestmark = pytest.mark.slow

ACTIVATION = "results/activations/t/hook=ln2_normalized/layer=0/part-00000.parquet"
ENCODE_LOG = "results/logs/encode_features/t/local/part-00000.log"


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The workflow run to the end (no peers), its reference committed and offered as a candidate."""
    workdir = tmp_path_factory.mktemp("finished")
    config = tiny_workdir(workdir)
    config["crossval"].update(NO_PEERS)
    return run_to_the_end(workdir, config)


def dry_run(workdir: Path, *targets: str) -> str:
    result = run_snakemake(workdir, workdir / "config.yaml", "-n", *targets)
    return result.stdout + result.stderr


def test_a_moved_workdir_is_up_to_date(finished, tmp_path):
    assert "Nothing to be done" in dry_run(finished, "all", "results/reports/reference_check.json")
    moved = copy_of(finished, tmp_path / "moved")
    assert "Nothing to be done" in dry_run(moved, "all", "results/reports/reference_check.json")


def test_every_data_file_the_workflow_wrote_has_its_hash_recorded_beside_it(finished):
    data = sorted((finished / "results").rglob("*.parquet"))
    kinds = {path.relative_to(finished / "results").parts[0] for path in data}
    assert {"tokens", "activations", "features"} <= kinds
    for path in data:  # b3sum's format, the digest computed by the blake3 package itself
        expected = f"{blake3.blake3(path.read_bytes()).hexdigest()}  {path.name}\n"
        assert digest_sidecar(path).read_text() == expected, path


def test_a_replaced_local_dictionary_file_reruns_resolution_and_is_checked_when_loaded(finished, tmp_path):
    workdir = copy_of(finished, tmp_path / "work")
    weights = workdir / "tc" / "layer_0" / "params.npz"
    manifest_path = workdir / "results" / "curation" / "local" / "manifest.json"
    manifest = read_manifest(manifest_path)
    recorded = manifest.layers[0].files[0].sha256
    gemma_scope_npz(weights, D_MODEL, D_SAE, seed=99)  # valid new weights, in place
    new = hashlib.sha256(weights.read_bytes()).hexdigest()
    planned = dry_run(workdir)
    assert "checkpoint resolve_dictionary_set:" in planned and "rule encode_features:" in planned
    assert "Updated input files: tc/layer_0/params.npz" in planned

    # what a forced encode of the stale manifest meets: the file, both hashes, and no output
    points = [(0, workdir / ACTIVATION, workdir / ACTIVATION.replace("ln2_normalized", "mlp_out"))]
    settings = {
        "device": "cpu",
        "dtype": "float32",
        "batch_rows": 64,
        "compression": "none",
        "row_group_rows": 64,
    }
    expected = rf"{weights}: set local, layer 0: sha256 is {new} but the manifest recorded {recorded}"
    with pytest.raises(DictionaryError, match=expected):
        encode_shard(manifest, manifest_path, points, tmp_path / "shard", settings, base=workdir)
    assert not (tmp_path / "shard").exists()

    run_snakemake(workdir, workdir / "config.yaml")
    features = (
        workdir / "results" / "features" / "t" / "local" / "shard=00000" / "layer=0" / "features.parquet"
    )
    metadata = json.loads(pq.read_schema(features).metadata[METADATA_KEY])
    assert metadata["dictionary_files"] == [{"local_path": "tc/layer_0/params.npz", "sha256": new}]


def test_edited_candidates_and_committed_references_are_judged_again(finished, tmp_path):
    workdir = copy_of(finished, tmp_path / "work")
    for folder in ("candidates", "committed"):
        path = workdir / folder / f"{REFERENCE}.json"
        document = json.loads(path.read_text())
        document["test_cases"][0]["top_10"][0]["logit"] += 1.0
        path.write_text(json.dumps(document))
    planned = dry_run(workdir, "all", "results/reports/reference_check.json")
    assert "rule crossval_report:" in planned and "rule check_references:" in planned
    report = run_snakemake(workdir, workdir / "config.yaml", check=False)
    assert report.returncode != 0 and f"candidates/{REFERENCE}.json" in report.stdout + report.stderr
    check = run_snakemake(
        workdir, workdir / "config.yaml", "results/reports/reference_check.json", check=False
    )
    assert check.returncode != 0 and f"committed/{REFERENCE}.json" in check.stdout + check.stderr


def byte_ranges(path: Path) -> dict[str, int]:
    """Offsets of an activation file's parts: a data page header, a page body, the footer."""
    column = pq.ParquetFile(path).metadata.row_group(0).column(3)  # the activation column
    size = path.stat().st_size
    footer_length = int.from_bytes(path.read_bytes()[-8:-4], "little")
    return {
        "page header": column.data_page_offset + 2,
        "page body": column.data_page_offset + column.total_compressed_size // 2,
        "footer": size - 8 - footer_length // 2,
    }


def flip_in_place(path: Path, offset: int) -> None:
    """XOR four bytes at ``offset`` with 0x5A and set the mtime back: only a content check sees it."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[offset : offset + 4] = bytes(byte ^ 0x5A for byte in data[offset : offset + 4])
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


@pytest.mark.parametrize("part", ["page header", "page body", "footer"])
def test_a_changed_byte_of_an_activation_file_fails_encoding_with_its_name(finished, tmp_path, part):
    workdir = copy_of(finished, tmp_path / "work")
    path = workdir / ACTIVATION
    flip_in_place(path, byte_ranges(path)[part])
    failed = run_snakemake(
        workdir,
        workdir / "config.yaml",
        "--forcerun",
        "encode_features",
        "--until",
        "encode_features",
        check=False,
    )
    log = (workdir / ENCODE_LOG).read_text()
    assert failed.returncode != 0
    assert f"{ACTIVATION}: the activation file changed since it was written" in log
    assert not (workdir / "results" / "features" / "t" / "local" / "shard=00000").exists()


def test_a_truncated_or_unrecorded_activation_file_fails_encoding_with_its_name(finished, tmp_path):
    workdir = copy_of(finished, tmp_path / "work")
    path = workdir / ACTIVATION
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    failed = run_snakemake(workdir, workdir / "config.yaml", check=False)
    log = (workdir / ENCODE_LOG).read_text()
    assert failed.returncode != 0 and f"{ACTIVATION}: the activation file changed since it was written" in log

    digest_sidecar(path).unlink()  # a file with no recorded hash is refused too
    failed = run_snakemake(workdir, workdir / "config.yaml", check=False)
    log = (workdir / ENCODE_LOG).read_text()
    assert failed.returncode != 0 and f"{ACTIVATION}: the activation file has no readable recorded" in log


def test_a_model_weight_changed_after_the_fetch_is_refused_by_references_and_capture(finished, tmp_path):
    model = copy_of(finished / "resources" / "models" / "tiny", tmp_path / "tiny")
    assert model_record(model)["weights_sha256"]
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match=rf"{weights}: sha256 is [0-9a-f]{{64}} but .* recorded"):
        model_record(model)
    with pytest.raises(ModelFolderError, match=rf"{weights}: sha256 is"):  # capture checks them too
        load_recording_model(model, [("resid_post", 0)], {"device": "cpu", "dtype": "float32"})


def clone_repository(destination: Path) -> Path:
    """A copy of this checkout's files (tracked, and untracked but not ignored): a second clone."""
    listed = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "ls-files", "-co", "--exclude-standard"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in listed:
        if (REPO_ROOT / name).is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, destination / name)
    return destination


def run_clone(clone: Path, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """The clone's workflow run in ``workdir`` with this checkout's environment."""
    command = [
        str(SNAKEMAKE),
        "--snakefile",
        str(clone / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(workdir / "config.yaml"),
        "--cores",
        "1",
        *args,
    ]
    result = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def test_a_second_clone_runs_its_own_package_in_one_environment(finished, tmp_path):
    """A clone using this checkout's environment (an editable install of this checkout's src/)."""
    clone = clone_repository(tmp_path / "clone")
    workdir = tmp_path / "work"
    shutil.copytree(finished / "models", workdir / "models")
    shutil.copy2(finished / "prompts.txt", workdir / "prompts.txt")
    shutil.copy2(finished / "config.yaml", workdir / "config.yaml")
    run_clone(clone, workdir, "resources/models/tiny")
    provenance = json.loads((workdir / "resources" / "models" / "tiny" / "provenance.json").read_text())
    assert provenance["environment"]["code"]["package"] == str(clone / "src" / "mi_oracle")


def test_a_package_change_reruns_the_stages_that_import_it(finished, tmp_path):
    clone = clone_repository(tmp_path / "clone")
    workdir = copy_of(finished, tmp_path / "work")
    unchanged = run_clone(clone, workdir, "-n")
    assert "Nothing to be done" in unchanged.stdout + unchanged.stderr
    encoder = clone / "src" / "mi_oracle" / "encoding" / "compute.py"
    encoder.write_text(encoder.read_text() + "\n# a change in the encoder\n")
    planned = run_clone(clone, workdir, "-n")
    output = planned.stdout + planned.stderr
    assert "rule encode_features:" in output and "rule crossval_encoders:" in output
    assert "rule capture_activations:" not in output and "checkpoint plan_capture:" not in output


def test_a_kernel_or_template_change_reruns_the_stages_that_use_it(finished, tmp_path):
    clone = clone_repository(tmp_path / "clone")
    workdir = copy_of(finished, tmp_path / "work")
    package = clone / "src" / "mi_oracle"
    kernel = package / "encoding" / "_sparse_kernels.c"
    original = kernel.read_text()
    kernel.write_text(original + "\n/* a change in the fused kernels */\n")
    output = "".join(run_clone(clone, workdir, "-n").stdout)
    assert "rule encode_features:" in output and "rule capture_activations:" not in output
    kernel.write_text(original)

    template = package / "templates" / "report.html.j2"
    template.write_text(template.read_text() + "\n{# a change in the report's page #}\n")
    output = run_clone(clone, workdir, "-n").stdout
    assert "rule crossval_report:" in output and "rule encode_features:" not in output


def test_resources_are_not_params_and_output_settings_are(finished, tmp_path):
    workdir = copy_of(finished, tmp_path / "work")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["capture"].update(runtime=240, mem_mb=12345)
    config["encoding"] = {"runtime": 99, "mem_mb": 4321}
    write_config(workdir / "config.yaml", config)
    assert "Nothing to be done" in dry_run(workdir)
    config["capture"]["layers"] = [0, 1, 2]
    write_config(workdir / "config.yaml", config)
    planned = dry_run(workdir)
    assert "rule capture_activations:" in planned and "checkpoint plan_capture:" not in planned


def reordered(value):
    """``value`` with every mapping's keys in reverse order (lists as they are)."""
    if isinstance(value, dict):
        return {key: reordered(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


def test_the_same_config_with_its_keys_in_another_order_reruns_nothing(finished, tmp_path):
    workdir = copy_of(finished, tmp_path / "work")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    model = config["models"]["tiny"]
    assert list(reordered(config)) != list(config) and list(reordered(model)) != list(model)
    write_config(workdir / "config.yaml", reordered(config))
    assert "Nothing to be done" in dry_run(workdir, "all", "results/reports/reference_check.json")
    (workdir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True))  # as safe_dump writes it
    assert "Nothing to be done" in dry_run(workdir, "all", "results/reports/reference_check.json")
