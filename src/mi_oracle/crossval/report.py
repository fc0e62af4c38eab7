"""The cross-validation report: every comparison's pass/fail, tables, plots and input provenance,
as one self-contained HTML page and the same content as JSON."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from mi_oracle.atomic import write_json_atomic
from mi_oracle.crossval.candidates import grade_candidates
from mi_oracle.crossval.kernels import kernel_spreads, kernels_html
from mi_oracle.crossval.svg import bar_chart
from mi_oracle.environment import describe_environment
from mi_oracle.errors import CrossValidationError
from mi_oracle.hashing import digest_file
from mi_oracle.json_files import read_json

log = logging.getLogger(__name__)
FORMAT = "mi-oracle/crossval-report"


def summarise(
    capture: Mapping[str, Any], encoders: Sequence[Mapping[str, Any]], candidates: Sequence[Mapping]
):
    """One summary row per comparison: name, pass (True, False or None = not run), detail."""
    rows = []
    for peer, label in (("hf", "Hugging Face output_hidden_states"), ("transformer_lens", "TransformerLens")):
        judged = [p[peer] for p in capture["points"] if "pass" in p[peer]]
        status = next((p[peer]["status"] for p in capture["points"] if "status" in p[peer]), "")
        failed = [f"{p['hook']}@{p['layer']}" for p in capture["points"] if p[peer].get("pass") is False]
        detail = f"{len(judged)} hook points compared" + (f"; failed: {', '.join(failed)}" if failed else "")
        rows.append(_row(f"capture vs {label}", not failed if judged else None, detail if judged else status))
    for peer, label in (("project", "mi-oracle encoder"), ("saelens", "SAELens")):
        judged = [layer for layer in encoders if "pass" in layer[peer]]
        failed = [f"{layer['set']}@{layer['layer']}" for layer in judged if not layer[peer]["pass"]]
        status = next((layer[peer]["status"] for layer in encoders if "pass" not in layer[peer]), "no sets")
        detail = f"{len(judged)} (set, layer) pairs vs the float64 oracle" + (
            f"; failed: {', '.join(failed)}" if failed else ""
        )
        rows.append(
            _row(f"{label} vs float64 oracle", not failed if judged else None, detail if judged else status)
        )
    for kind in ("sae", "plt", "clt", "forward"):
        graded = [c for c in candidates if c.get("kind") == kind]
        failed = [c["reference"] for c in graded if c["grade"] == "fail"]
        grades = ", ".join(f"{c['reference']}: {c['grade']}" for c in graded)
        rows.append(_row(f"candidates ({kind})", not failed if graded else None, grades or "no candidate"))
    strays = [c for c in candidates if "kind" not in c]
    if strays:
        rows.append(_row("candidates (unmatched)", False, "; ".join(c["failures"][0] for c in strays)))
    return rows


def _row(name: str, passed: bool | None, detail: str) -> dict[str, Any]:
    return {"comparison": name, "pass": passed, "detail": detail}


def build_report(
    capture_path: Path,
    encoder_paths: Sequence[Path],
    metrics_paths: Mapping[str, Path],
    references: Mapping[str, tuple[str, Path]],
    candidates_dir: Path | None,
    native_references: Mapping[str, Path] | None = None,
) -> dict[str, Any]:
    """The report document (what crossval.json holds); ``native_references``: native-kernel copies."""
    capture = read_json(capture_path)
    encoders = [layer for path in encoder_paths for layer in json.loads(Path(path).read_text())]
    candidates = grade_candidates(references, candidates_dir)
    summary = summarise(capture, encoders, candidates)
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
        "devices": {
            "devices": capture.get("devices", []),
            "status": "not run: CPU-against-GPU needs captures and encodings on both devices; "
            "this run has " + (", ".join(capture.get("devices", [])) or "none"),
            "kernels": kernel_spreads(references, native_references or {}),
        },
        "metrics": {name: read_json(path) for name, path in metrics_paths.items()},
        "inputs": [{"path": str(path), "sha256": digest_file(Path(path)).sha256} for path in inputs],
        "environment": describe_environment(),
    }


STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:0.5rem 0 1.5rem}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f2f2f2}.pass{color:#17803d;font-weight:bold}.fail{color:#c62828;font-weight:bold}
.muted{color:#777}.chart-title{font-size:13px;font-weight:bold}.tick{font-size:10px;fill:#444}
code{font-size:90%}li.failure{font-family:monospace;font-size:90%}
"""


def _verdict(passed: bool | None) -> Markup:
    if passed is None:
        return Markup('<span class="muted">not run</span>')
    return Markup('<span class="pass">pass</span>' if passed else '<span class="fail">FAIL</span>')


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> Markup:
    """A table; cells are escaped unless already markup (a verdict)."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return Markup(f'<table class="{escape(cls)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')


def _g(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _peer_cells(result: Mapping[str, Any], keys: Sequence[str]) -> list[Any]:
    if "pass" not in result:
        return [Markup('<span class="muted">{}</span>').format(result.get("status", ""))] + [""] * len(keys)
    return [_verdict(result["pass"])] + [_g(result[key]) for key in keys]


_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)
CAPTURE_KEYS = ["max_abs_diff", "max_rel_diff", "bar"]
ENCODER_KEYS = ["flips", "flips_away_from_threshold", "max_abs_diff", "value_excess", "top10_set_agreement"]


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


def render_html(report: Mapping[str, Any]) -> str:
    """The self-contained page (``templates/report.html.j2``): summary first, then each comparison,
    plots and provenance."""
    capture, encoders, env = report["capture"], report["encoders"], report["environment"]
    context = {
        "report": report,
        "style": Markup(STYLE),
        "verdict": _verdict,
        "table": _table,
        "summary_rows": [[r["comparison"], _verdict(r["pass"]), r["detail"]] for r in report["summary"]],
        "capture": capture,
        "capture_headers": ["hook", "layer", "tokens", "HF", *CAPTURE_KEYS, "TransformerLens", *CAPTURE_KEYS],
        "capture_rows": [
            [
                p["hook"],
                p["layer"],
                p["n_tokens"],
                *_peer_cells(p["hf"], CAPTURE_KEYS),
                *_peer_cells(p["transformer_lens"], CAPTURE_KEYS),
            ]
            for p in capture["points"]
        ],
        "encoder_headers": [
            *["set", "layer", "schema", "tokens", "mi-oracle", *ENCODER_KEYS],
            *["SAELens", *ENCODER_KEYS],
        ],
        "encoder_rows": [
            [
                e["set"],
                e["layer"],
                e["schema"],
                e["n_tokens"],
                *_peer_cells(e["project"], ENCODER_KEYS),
                *_peer_cells(e["saelens"], ENCODER_KEYS),
            ]
            for e in encoders
        ],
        "circuit_tracer": encoders[0]["circuit_tracer"] if encoders else None,
        "kernels": Markup(kernels_html(report["devices"].get("kernels", []))),
        "env": env,
        "hardware": env["hardware"],
        "versions": ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v),
        **_charts(report),
    }
    return _TEMPLATES.get_template("report.html.j2").render(context)


def write_report(report: Mapping[str, Any], html_path: Path, json_path: Path, report_only: bool) -> None:
    """Write both files; when a bar failed (and not report-only) keep a copy beside the log and raise."""
    html = render_html(report)
    write_json_atomic(json_path, report)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    staging = html_path.with_name(f".{html_path.name}.tmp")
    staging.write_text(html, encoding="utf-8")
    staging.replace(html_path)
    failed = [row for row in report["summary"] if row["pass"] is False]
    for row in report["summary"]:
        log.info(
            "%-48s %s  %s",
            row["comparison"],
            {True: "pass", False: "FAIL", None: "not run"}[row["pass"]],
            row["detail"],
        )
    if failed and not report_only:
        kept = html_path.with_name(f"{html_path.stem}.failed.html")
        shutil.copyfile(html_path, kept)
        shutil.copyfile(json_path, kept.with_suffix(".json"))
        lines = [f"{row['comparison']}: {row['detail']}" for row in failed]
        for c in report["candidates"]:
            lines += [f"  {c['candidate']}: {failure}" for failure in c["failures"]]
        raise CrossValidationError(
            f"{len(failed)} cross-validation comparison(s) failed (report kept at {kept}):\n"
            + "\n".join(lines)
        )
