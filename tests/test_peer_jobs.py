"""Peer jobs and the launcher: what a peer is asked, and what its rule leaves behind."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mi_oracle.dictionaries.manifest import DictionaryFile, LayerRecord, Manifest
from mi_oracle.errors import DataFileError, DictionaryError, PeerError
from mi_oracle.hashing import sha256_file
from mi_oracle.hook_points import HOOK_POINTS
from mi_oracle.parquet_files import record_sha256
from mi_oracle.peers.jobs import circuit_tracer_job
from mi_oracle.peers.launch import run_peer


def resolved_file(base: Path, name: str, layer: int) -> dict:
    """A downloaded layer file and its manifest entry (path relative to ``base``, its sha256)."""
    path = base / "dl" / name / f"layer_{layer}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(f"{name} {layer}".encode())
    return DictionaryFile(f"layer_{layer}.safetensors", str(path.relative_to(base)), 0, sha256_file(path))


def manifest(
    base: Path, name: str, kind: str, resolved: list[int], available: list[int], curation: str | None
) -> Manifest:
    return Manifest(
        name=name,
        kind=kind,
        synthetic=False,
        model={},
        input_hook="mlp_in",
        output_hook="mlp_out",
        activation={"kind": "relu", "source": "weights"},
        hooks_as_written={"feature_input_hook": "mlp.hook_in", "feature_output_hook": "hook_mlp_out"},
        curation={"local_path": curation} if curation else {"source": "hf://org/repo/config.yaml"},
        available_layers=tuple(
            {"layer": layer, "source": f"layer_{layer}.safetensors"} for layer in available
        ),
        encode_layers=tuple(resolved),
        layers=tuple(
            LayerRecord(layer, (resolved_file(base, name, layer),), "PltBundle", 4, 8, "mlp_in", "mlp_out")
            for layer in resolved
        ),
    )


def activation_files(base: Path, names) -> None:
    """A small activation file per set at ``acts/<name>.parquet``, its sha256 recorded as capture does."""
    for name in names:
        path = base / "acts" / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"prompt_id": [0, 1]}), path)
        record_sha256(path)


def test_circuit_tracer_is_asked_for_transcoders_with_every_layer_and_told_why_not_otherwise(tmp_path):
    (tmp_path / "local").mkdir()
    for layer in range(3):
        (tmp_path / "local" / f"layer_{layer}.safetensors").write_bytes(b"")
    manifests = {
        "sae": manifest(tmp_path, "sae", "sae", [0], [0], None),
        "hub": manifest(tmp_path, "hub", "transcoder_set", [0, 2], [0, 1, 2], None),
        "local": manifest(tmp_path, "local", "transcoder_set", [2], [0, 1, 2], "local/config.yaml"),
    }
    points = {name: [[2, f"acts/{name}.parquet", "target"]] for name in manifests}
    activation_files(tmp_path, manifests)
    references = {
        "plt": {"name": "plt", "kind": "plt", "set": "local", "path": "results/references/plt.json"},
        "fwd": {"name": "fwd", "kind": "forward", "set": None, "path": "results/references/fwd.json"},
    }
    capture = {
        "model_dir": "m",
        "tokens": "t",
        "n_prompts": 2,
        "layers": [2],
        "hooks": ["resid_mid", "mlp_in"],
    }
    job = circuit_tracer_job(manifests, points, references, capture, tmp_path, 64)

    assert job["skipped"]["sae"].startswith("not applicable: circuit-tracer loads transcoders")
    assert job["skipped"]["hub"] == (
        "not run: circuit-tracer loads every layer of a transcoder set; layers [1] are not "
        "downloaded (list them in the set's `layers` to fetch them)"
    )
    files = job["sets"]["local"]["files"]  # layer 2 resolved, 0 and 1 beside the local YAML
    assert files["2"] == [str(tmp_path / "dl/local/layer_2.safetensors")]
    assert files["0"] == [str(tmp_path / "local" / "layer_0.safetensors")]
    assert job["sets"]["local"]["activation_files"] == {"2": str(tmp_path / "acts/local.parquet")}
    assert [r["name"] for r in job["references"]] == ["plt"]
    assert job["capture"]["hooks"] == [["resid_mid", "hook_resid_mid"], ["mlp_in", "mlp.hook_in"]]
    assert HOOK_POINTS["ln2_normalized"].in_block == "ln2.hook_normalized"


def test_a_set_file_changed_since_resolution_is_refused_before_the_peer_reads_it(tmp_path):
    manifests = {"hub": manifest(tmp_path, "hub", "transcoder_set", [0, 1], [0, 1], None)}
    changed = tmp_path / "dl" / "hub" / "layer_1.safetensors"
    changed.write_bytes(b"replaced")
    points = {"hub": [[1, "acts/hub.parquet", "target"]]}
    expected = rf"{changed}: set hub, layer 1: sha256 is {sha256_file(changed)}"
    with pytest.raises(DictionaryError, match=expected):
        circuit_tracer_job(manifests, points, {}, None, tmp_path, 64)


def test_an_activation_file_changed_since_capture_is_refused_before_the_peer_reads_it(tmp_path):
    manifests = {"hub": manifest(tmp_path, "hub", "transcoder_set", [0, 1], [0, 1], None)}
    activation_files(tmp_path, manifests)
    changed = tmp_path / "acts" / "hub.parquet"
    changed.write_bytes(changed.read_bytes()[:-9] + b"x" + changed.read_bytes()[-8:])
    points = {"hub": [[1, "acts/hub.parquet", "target"]]}
    with pytest.raises(DataFileError, match=rf"{changed}: the activation file changed since it was written"):
        circuit_tracer_job(manifests, points, {}, None, tmp_path, 64)


def test_a_missing_peer_environment_is_reported_not_run_with_the_fix(tmp_path):
    status = run_peer(
        "nnsight", tmp_path / "no-venv" / "bin" / "python", Path(__file__), {"a": 1}, tmp_path / "out", 1
    )
    assert status["status"].startswith(f"not run: the peer environment {tmp_path / 'no-venv'}")
    assert "`make peers` makes it" in status["status"]
    assert json.loads((tmp_path / "out" / "status.json").read_text()) == status
    assert json.loads((tmp_path / "out" / "job.json").read_text()) == {"a": 1}


def test_a_failing_peer_names_itself_and_leaves_nothing(tmp_path):
    script = tmp_path / "peer.py"
    script.write_text(
        "import sys, pathlib\n"
        "pathlib.Path(sys.argv[2], 'half').write_text('x')\n"
        "raise SystemExit('no luck')\n"
    )
    with pytest.raises(
        PeerError, match=r"circuit-tracer \(peer.py in .*\) failed with exit code 1:\nno luck"
    ):
        run_peer("circuit-tracer", Path(sys.executable), script, {}, tmp_path / "out", 1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["peer.py"]


def test_a_peer_runs_in_a_clean_interpreter_and_its_output_is_kept(tmp_path, monkeypatch):
    script = tmp_path / "peer.py"
    script.write_text(
        "import json, os, sys, pathlib\n"
        "job = json.loads(pathlib.Path(sys.argv[1]).read_text())\n"
        "seen = {'threads': os.environ['PEER_THREADS'], 'pythonpath': os.environ.get('PYTHONPATH')}\n"
        "pathlib.Path(sys.argv[2], 'answer.json').write_text(json.dumps({**job, **seen}))\n"
    )
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    status = run_peer("nnsight", Path(sys.executable), script, {"q": 2}, tmp_path / "out", 3)
    assert status["status"] == "run" and len(status["script_sha256"]) == 64
    answer = json.loads((tmp_path / "out" / "answer.json").read_text())
    assert answer == {"q": 2, "threads": "3", "pythonpath": None}


def test_a_job_with_nothing_for_the_peer_does_not_start_it(tmp_path):
    status = run_peer(
        "circuit-tracer", Path(sys.executable), Path(__file__), {}, tmp_path / "out", 1, idle="nothing"
    )
    assert status["status"] == "not run: nothing"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["job.json", "status.json"]


def test_a_peer_encoding_of_other_rows_is_refused_naming_its_file(tmp_path):
    from mi_oracle.crossval.encoders import circuit_tracer_agreement
    from mi_oracle.errors import DataFileError

    folder = tmp_path / "circuit-tracer"
    (folder / "features").mkdir(parents=True)
    (folder / "status.json").write_text(json.dumps({"status": "run"}))
    (folder / "job.json").write_text(json.dumps({"skipped": {"sae": "not applicable: an SAE"}}))
    arrays = {
        "acts_3": np.zeros((2, 4), np.float32),
        "prompt_id_3": np.array([0, 1]),
        "position_3": np.array([0, 0]),
    }
    np.savez(folder / "features" / "s.npz", **arrays)
    rows = {"prompt_id": [0, 2], "position": [0, 0]}
    with pytest.raises(
        DataFileError, match=r"features/s.npz: circuit-tracer's rows of layer 3 are not the captured"
    ):
        circuit_tracer_agreement(folder, "s", 3, rows, lambda acts: {})
    assert circuit_tracer_agreement(folder, "sae", 3, rows, None) == {"status": "not applicable: an SAE"}
