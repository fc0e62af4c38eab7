"""The cross-validation report: every comparison's pass/fail, tables, plots and input provenance,
as one self-contained HTML page and the same content as JSON."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup

from mi_oracle.atomic import write_json_atomic, write_text_atomic
from mi_oracle.crossval.candidates import grade_candidates
from mi_oracle.crossval.devices import compare_runs
from mi_oracle.crossval.kernels import kernel_spreads
from mi_oracle.crossval.peer_outputs import peer_references
from mi_oracle.crossval.summary import CAPTURE_PEERS, ENCODERS, summarise
from mi_oracle.crossval.svg import bar_chart
from mi_oracle.environment import describe_environment
from mi_oracle.errors import CrossValidationError
from mi_oracle.hashing import digest_file
from mi_oracle.html_pages import number, render_template
from mi_oracle.json_files import read_json

log = logging.getLogger(__name__)
FORMAT = "mi-oracle/crossval-report"


def build_report(
    capture_path: Path,
    encoder_paths: Sequence[Path],
    metrics_paths: Mapping[str, Path],
    references: Mapping[str, tuple[str, Path]],
    candidates_dir: Path | None,
    native_references: Mapping[str, Path] | None = None,
    peers: Mapping[str, Path] | None = None,
    compare_run: tuple[str, str, str] | None = None,
) -> dict[str, Any]:
    """The report document (what crossval.json holds); ``native_references``: native-kernel copies;
    ``peers``: peer name -> the folder it wrote in its own environment; ``compare_run``: (this run,
    another run of the same prompts, shard) for the devices section."""
    capture = read_json(capture_path)
    encoders = [layer for path in encoder_paths for layer in json.loads(Path(path).read_text())]
    candidates = grade_candidates(references, candidates_dir)
    graded, not_run = {"candidate": candidates} if candidates_dir else {}, {}
    peer_outputs = {}
    if peers and "circuit-tracer" in peers:
        found = peer_references(Path(peers["circuit-tracer"]))
        if isinstance(found, str):
            not_run["circuit-tracer"] = found
        else:
            peer_outputs["circuit-tracer"] = graded["circuit-tracer"] = grade_candidates(references, found)
    kinds = {name: kind for name, (kind, _) in references.items()}
    summary = summarise(capture, encoders, kinds, graded, not_run)
    inputs = [
        capture_path,
        *encoder_paths,
        *metrics_paths.values(),
        *(path for _, path in references.values()),
        *(native_references or {}).values(),
    ]
    inputs += sorted(Path(candidates_dir).glob("*.json")) if candidates_dir else []
    return {
        "format": FORMAT,
        "pass": all(row["pass"] is not False for row in summary),
        "summary": summary,
        "capture": capture,
        "encoders": encoders,
        "candidates": candidates,
        "peer_references": peer_outputs,
        "devices": {
            "devices": capture.get("devices", []),
            "status": "run"
            if compare_run
            else "not run: set crossval.compare_run to another run of the same "
            "prompts (e.g. on CUDA: benchmarks/gpu_check.sh); this run has "
            + (", ".join(capture.get("devices", [])) or "none"),
            "comparison": _compare_runs(compare_run, capture, metrics_paths) if compare_run else None,
            "kernels": kernel_spreads(references, native_references or {}),
        },
        "metrics": {name: read_json(path) for name, path in metrics_paths.items()},
        "inputs": [{"path": str(path), "sha256": digest_file(Path(path)).sha256} for path in inputs],
        "environment": describe_environment(),
    }


def _compare_runs(compare_run: tuple[str, str, str], capture: Mapping[str, Any], metrics_paths) -> dict:
    this, other, shard = compare_run
    points = [(p["hook"], p["layer"]) for p in capture["points"]]
    sets = {name: sorted(map(int, read_json(path)["layers"])) for name, path in metrics_paths.items()}
    return compare_runs({"this": this, "other": other}, shard, points, sets)


CAPTURE_KEYS = ["max_rel_diff"]
ENCODER_KEYS = ["flips_away_from_threshold", "max_abs_diff"]


def _with_bar(points: Sequence[Mapping[str, Any]], key: str) -> str:
    """A capture column's header: the implementation and its bar."""
    bar = next(p[key]["bar"] for p in points if "bar" in p.get(key, {}))
    return f"{CAPTURE_PEERS[key]} (bar {bar:g})"


def _columns(rows: Sequence[Mapping[str, Any]], names: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(implementations that ran somewhere, one 'not run' line for each that ran nowhere)."""
    shown, folded = [], []
    for key, label in names.items():
        results = [r[key] for r in rows if isinstance(r.get(key), dict)]
        if any("pass" in r for r in results):
            shown.append(key)
        elif results and not all(r.get("status", "").startswith("not applicable") for r in results):
            folded.append(f"{label}: {next(r.get('status', '') for r in results)}")
    return shown, folded


def _charts(report: Mapping[str, Any]) -> dict[str, Markup]:
    """The page's SVG bar charts (already markup)."""
    points = [p for p in report["capture"]["points"] if "max_rel_diff" in p["transformer_lens"]]
    encoders = report["encoders"]
    metrics = report["metrics"]
    layers = [(m, k) for m in metrics.values() for k in sorted(m["layers"], key=int)]
    labels = [f"{name}@{layer}" for name, m in metrics.items() for layer in sorted(m["layers"], key=int)]
    charts = {
        "capture_chart": bar_chart(
            "capture vs TransformerLens: max relative diff per hook point (log10)",
            [f"{p['hook']}@{p['layer']}" for p in points],
            [p["transformer_lens"]["max_rel_diff"] for p in points],
            log=True,
            limit=points[0]["transformer_lens"]["bar"] if points else None,
        ),
        "flips_chart": bar_chart(
            "mi-oracle encoder: active-set flips per layer",
            [f"{e['set']}@{e['layer']}" for e in encoders],
            [e["project"]["flips"] for e in encoders],
        ),
        "l0_chart": bar_chart("mean L0 per layer", labels, [m["layers"][k]["mean_l0"] for m, k in layers]),
        "fvu_chart": bar_chart("FVU per layer", labels, [m["layers"][k]["fvu"] for m, k in layers]),
    }
    return {name: Markup(svg) for name, svg in charts.items()}


def _kernel_rows(rows: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    return [
        [
            row["reference"],
            row["kind"],
            " vs ".join(map(str, row["numerics"])),
            row["values"],
            row["differing_values"],
            f"{row['max_abs_diff']:.3g}",
            f"{row['max_rel_diff']:.3g}",
            row["differing_integers"] + row["other_differences"],
        ]
        for row in rows
    ]


def render_html(report: Mapping[str, Any]) -> str:
    """The self-contained page (``templates/report.html.j2``): summary first, then each comparison,
    plots and provenance."""
    capture, encoders, env = report["capture"], report["encoders"], report["environment"]
    capture_shown, capture_folded = _columns(capture["points"], CAPTURE_PEERS)
    encoder_shown, encoder_folded = _columns(encoders, ENCODERS)
    context = {
        "report": report,
        "summary_rows": [
            [
                r["comparison"],
                {"verdict": r["pass"]},
                r["agree"],
                r["worst"],
                {"detail": r["detail"], "not_run": r["not_run"]},
            ]
            for r in report["summary"]
        ],
        "capture": capture,
        "capture_headers": [
            "hook",
            "layer",
            "tokens",
            *(_with_bar(capture["points"], k) for k in capture_shown),
        ],
        "capture_rows": [
            [
                p["hook"],
                p["layer"],
                p["n_tokens"],
                *({"result": p.get(k, {}), "keys": CAPTURE_KEYS} for k in capture_shown),
            ]
            for p in capture["points"]
        ],
        "capture_not_run": capture_folded,
        "encoder_headers": ["set", "layer", "schema", "tokens", *(ENCODERS[k] for k in encoder_shown)],
        "encoder_rows": [
            [
                e["set"],
                e["layer"],
                e["schema"],
                e["n_tokens"],
                *({"result": e.get(k, {}), "keys": ENCODER_KEYS} for k in encoder_shown),
            ]
            for e in encoders
        ],
        "encoder_not_run": encoder_folded,
        "kernel_rows": _kernel_rows(report["devices"].get("kernels", [])),
        "device_activation_rows": [
            [r["hook"], r["layer"], r["n_tokens"], number(r["max_abs_diff"]), number(r["max_rel_diff"])]
            for r in (report["devices"].get("comparison") or {}).get("activations", [])
        ],
        "device_feature_rows": [
            [r["set"], r["layer"], r["n_tokens"], r["active"], r["flips"], number(r["max_abs_diff"])]
            for r in (report["devices"].get("comparison") or {}).get("features", [])
        ],
        "env": env,
        "hardware": env["hardware"],
        "versions": ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v),
        **_charts(report),
    }
    return render_template("report.html.j2", **context)


def write_report(report: Mapping[str, Any], html_path: Path, json_path: Path, report_only: bool) -> None:
    """Write both files; when a bar failed (and not report-only) keep a copy beside the log and raise."""
    html = render_html(report)
    write_json_atomic(json_path, report)
    write_text_atomic(Path(html_path), html)
    failed = [row for row in report["summary"] if row["pass"] is False]
    for row in report["summary"]:
        log.info(
            "%-48s %s  %s",
            row["comparison"],
            {True: "pass", False: "FAIL", None: "not run"}[row["pass"]],
            row["detail"],
        )
    kept = Path(html_path).with_name(f"{Path(html_path).stem}.failed.html")
    if not failed:  # an earlier failure's copy would stand beside a report that passes
        kept.unlink(missing_ok=True)
        kept.with_suffix(".json").unlink(missing_ok=True)
    if failed and not report_only:
        shutil.copyfile(html_path, kept)
        shutil.copyfile(json_path, kept.with_suffix(".json"))
        lines = [f"{row['comparison']}: {row['detail']}" for row in failed]
        for c in report["candidates"]:
            lines += [f"  {c['candidate']}: {failure}" for failure in c["failures"]]
        raise CrossValidationError(
            f"{len(failed)} cross-validation comparison(s) failed (report kept at {kept}):\n"
            + "\n".join(lines)
        )
