"""Reruns follow content, runs stay apart, and no target crashes (issue 40). One tiny workflow with
both peers in their own environment, a synthetic set, a local set and candidate and committed
references runs once; each test works on a copy of its workdir (timestamps kept, as ``cp -a``)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from mi_oracle.layout import capture_check_path, features_dir, peer_dir, report_path
from tests.conftest import run_snakemake, write_config
from tests.dictionary_files import gemma_scope_npz
from tests.tiny_workdir import D_MODEL, D_SAE, REFERENCE, RUN, TARGETS, copy_of, run_to_the_end, tiny_workdir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """The tiny workflow with both peers, a synthetic set beside the local one and a transcoder
    reference of it, run to the end."""
    workdir = tmp_path_factory.mktemp("finished")
    config = tiny_workdir(workdir, peers_can_load=True)
    config["capture"]["hooks"].append("resid_post")
    synthetic = {"schema": "GemmaScopeNpz", "kind": "transcoder_set", "d_sae": 64, "seed": 2, "target_l0": 8}
    config["dictionaries"].append({"name": "syn", "synthetic": synthetic})
    config["synthetic_calibration_tokens"] = 64
    config["references"]["items"].append({"name": "plt_reference", "kind": "plt", "set": "syn"})
    return run_to_the_end(workdir, config)


def snakemake(workdir: Path, *args: str, check: bool = True, configfile: str = "config.yaml") -> str:
    result = run_snakemake(workdir, workdir / configfile, *args, check=check)
    return result.stdout + result.stderr


def up_to_date(workdir: Path, configfile: str = "config.yaml") -> bool:
    return "Nothing to be done" in snakemake(workdir, "-n", *TARGETS, configfile=configfile)


def edit_keeping_mtime(path: Path, edit) -> None:
    """Change a file's content and set its mtime back, as ``cp -p`` or ``rsync -a`` leave it."""
    stat = path.stat()
    path.write_bytes(edit(path.read_bytes()))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_the_reported_target_runs_with_the_peer_output_missing(finished, tmp_path):
    workdir = copy_of(finished, tmp_path / "work")
    shutil.rmtree(workdir / peer_dir(RUN, "circuit-tracer"))
    output = snakemake(workdir, capture_check_path(RUN), "--forcerun", "crossval_capture")
    assert "<TBD>" not in output
    status = json.loads((workdir / peer_dir(RUN, "circuit-tracer") / "status.json").read_text())
    assert status["status"] == "run"
    planned = snakemake(workdir, "-n", *TARGETS)  # the report waits on the new outputs, no more
    assert "<TBD>" not in planned and "Params have changed" not in planned
    snakemake(workdir, *TARGETS)
    assert up_to_date(workdir)


def outputs_by_rule(workdir: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(rule -> its outputs, output -> its inputs), from Snakemake's own detailed summary."""
    lines = snakemake(workdir, "--detailed-summary", *TARGETS).splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("output_file\t"))
    rules: dict[str, list[str]] = {}
    inputs: dict[str, list[str]] = {}
    for line in lines[header + 1 :]:
        fields = line.split("\t")
        if len(fields) < 5 or fields[2] in ("", "-"):
            continue
        rules.setdefault(fields[2], []).append(fields[0])
        inputs[fields[0]] = [path for path in fields[4].split(",") if path]
    return rules, inputs


def test_every_rule_output_as_target_forced_with_an_upstream_output_missing(finished, tmp_path):
    """Each rule's output as the target, forced, with each upstream job's output hidden in turn
    (a checkpoint's too): the plan has a job for every missing file, and where no checkpoint is
    left to run no job is left with input <TBD>. A dry run; the real run is the test above."""
    workdir = copy_of(finished, tmp_path / "work")
    rules, inputs = outputs_by_rule(workdir)
    producer = {output: rule for rule, outputs in rules.items() for output in outputs}
    assert {"peer_circuit_tracer", "peer_nnsight", "crossval_encoders", "encode_features"} <= set(rules)
    walked = 0
    for rule, outputs in sorted(rules.items()):
        target = outputs[0]
        upstream = {producer[path]: path for path in inputs[target] if path in producer}
        for upstream_rule, missing in sorted(upstream.items()):
            hidden = workdir / f"{missing}.hidden"
            present = (workdir / missing).exists()  # a temporary output is gone already
            if present:
                (workdir / missing).rename(hidden)
            try:
                output = snakemake(workdir, "-n", target, "--forcerun", rule)
            finally:
                if present:
                    hidden.rename(workdir / missing)
            assert f"rule {upstream_rule}:" in output or f"checkpoint {upstream_rule}:" in output, (
                rule,
                missing,
            )
            if not re.search(r"^(local)?checkpoint \w+:", output, re.MULTILINE):
                assert "<TBD>" not in output, (rule, missing, output[-3000:])
            walked += 1
    assert walked >= 20


def test_a_candidate_or_committed_copy_edited_with_its_mtime_kept_is_judged_again(finished, tmp_path):
    workdir = copy_of(finished, tmp_path / "work")

    def moved_logit(data: bytes) -> bytes:
        document = json.loads(data)
        document["test_cases"][0]["top_10"][0]["logit"] += 1.0
        return json.dumps(document).encode()

    for folder in ("candidates", "committed"):
        edit_keeping_mtime(workdir / folder / f"{REFERENCE}.json", moved_logit)
    planned = snakemake(workdir, "-n", *TARGETS)
    assert "rule crossval_report:" in planned and "rule check_references:" in planned
    report = snakemake(workdir, check=False)
    assert f"candidates/{REFERENCE}.json" in report and "top_10[0].logit" in report
    check = snakemake(workdir, "results/reports/reference_check.json", check=False)
    assert "rule check_references:" in check and f"committed/{REFERENCE}.json" in check


def test_a_local_dictionary_file_edited_with_its_mtime_kept_is_resolved_again(finished, tmp_path):
    workdir = copy_of(finished, tmp_path / "work")
    weights = workdir / "tc" / "layer_0" / "params.npz"
    replacement = gemma_scope_npz(tmp_path / "new.npz", D_MODEL, D_SAE, seed=99).read_bytes()
    edit_keeping_mtime(weights, lambda _: replacement)
    planned = snakemake(workdir, "-n", *TARGETS)
    assert "checkpoint resolve_dictionary_set:" in planned and "Params have changed" in planned
    assert f"'tc/layer_0/params.npz': '{hashlib.sha256(replacement).hexdigest()}'" in planned
    snakemake(workdir, *TARGETS)
    assert up_to_date(workdir)


@pytest.mark.parametrize(
    ("relative", "what"),
    [
        (f"{features_dir(RUN, 'syn', '00000')}/_sums.json", "shard's metric sums"),
        (f"results/tokens/{RUN}/_plan.json", "capture plan"),
    ],
)
def test_an_edited_json_side_file_is_refused_by_name(finished, tmp_path, relative, what):
    workdir = copy_of(finished, tmp_path / "work")
    edit_keeping_mtime(workdir / relative, lambda data: data.replace(b'"', b' "', 1))
    forced = "encoding_metrics" if "_sums" in relative else "capture_activations"
    output = snakemake(workdir, "--forcerun", forced, *TARGETS, check=False)
    assert f"{relative}: the {what} changed since it was written" in output


def test_a_changed_synthetic_set_is_rebuilt_never_accepted(finished, tmp_path):
    workdir = copy_of(finished, tmp_path / "work")
    weights = sorted((workdir / "results" / "synthetic" / "syn").rglob("params.npz"))[0]
    relative = weights.relative_to(workdir)

    def flipped(data: bytes) -> bytes:
        changed = bytearray(data)
        changed[len(changed) // 2] ^= 0xFF
        return bytes(changed)

    edit_keeping_mtime(weights, flipped)
    # what the old advice (force resolution) now meets: the set is refused, never recorded anew
    output = snakemake(workdir, "--forcerun", "resolve_dictionary_set", *TARGETS, check=False)
    assert f"{relative}: the synthetic set syn changed after it was built" in output
    assert "snakemake --forcerun build_synthetic_dictionaries" in output
    assert not (workdir / "results" / "curation" / "syn" / "manifest.json").exists()  # failed: removed
    # the advice: rebuild from the source, to the same bytes
    snakemake(workdir, "--forcerun", "build_synthetic_dictionaries", *TARGETS)
    assert weights.read_bytes() == (finished / relative).read_bytes()


def absolute_paths(workdir: Path) -> list[str]:
    """Files under results/ and resources/ (logs aside) whose text holds the workdir's path."""
    found = []
    for root in ("results", "resources"):
        for path in (workdir / root).rglob("*"):
            text = path.suffix in (".json", ".yaml", ".tsv") and "logs" not in path.parts
            if text and path.is_file() and str(workdir) in path.read_text(errors="replace"):
                found.append(str(path.relative_to(workdir)))
    return found


def test_a_moved_workdir_with_its_peers_is_up_to_date(finished, tmp_path):
    assert up_to_date(finished)
    moved = tmp_path / "moved"
    shutil.move(copy_of(finished, tmp_path / "work"), moved)
    assert up_to_date(moved)
    assert absolute_paths(finished) == []


def test_two_runs_in_one_folder_leave_each_other_up_to_date(finished, tmp_path):
    workdir = copy_of(finished, tmp_path / "work")
    config = yaml.safe_load((workdir / "config.yaml").read_text())
    config["capture"]["run"] = "other"
    write_config(workdir / "other.yaml", config)
    output = snakemake(workdir, *TARGETS, configfile="other.yaml")
    assert "build_synthetic_dictionaries" not in output  # the synthetic sets are shared, not rebuilt
    assert (workdir / report_path("other")).is_file() and (workdir / report_path(RUN)).is_file()
    assert up_to_date(workdir) and up_to_date(workdir, "other.yaml")
