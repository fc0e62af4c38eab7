"""The cross-validation report: every comparison's pass/fail, tables, plots and input provenance,
as one self-contained HTML page and the same content as JSON."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

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


def _verdict(passed: bool | None) -> str:
    if passed is None:
        return '<span class="muted">not run</span>'
    return '<span class="pass">pass</span>' if passed else '<span class="fail">FAIL</span>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _g(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else escape(str(value))


def _peer_cells(result: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    if "pass" not in result:
        return [f'<span class="muted">{escape(result.get("status", ""))}</span>'] + [""] * len(keys)
    return [_verdict(result["pass"])] + [_g(result[key]) for key in keys]


def render_html(report: Mapping[str, Any]) -> str:
    """The self-contained page: summary first, then each comparison, plots and provenance."""
    overall = "PASS" if report["pass"] else "FAIL"
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>mi-oracle cross-validation: "
        f"{overall}</title><style>{STYLE}</style></head><body>",
        f"<h1>mi-oracle cross-validation: {_verdict(report['pass'])}</h1>",
        "<h2>Summary</h2>",
        _table(
            ["comparison", "result", "detail"],
            [[escape(r["comparison"]), _verdict(r["pass"]), escape(r["detail"])] for r in report["summary"]],
            "summary",
        ),
    ]
    capture = report["capture"]
    parts.append(
        f"<h2>Capture</h2><p>{capture['n_prompts']} prompts of shard {escape(capture['shard'])}, "
        f"each run alone on CPU in {escape(capture['model_dtype'])}, the dtype the capture ran in "
        "(relative differences are to the row's norm).</p>"
    )
    keys = ["max_abs_diff", "max_rel_diff", "bar"]
    parts.append(
        _table(
            ["hook", "layer", "tokens", "HF", *keys, "TransformerLens", *keys],
            [
                [
                    escape(p["hook"]),
                    p["layer"],
                    p["n_tokens"],
                    *_peer_cells(p["hf"], keys),
                    *_peer_cells(p["transformer_lens"], keys),
                ]
                for p in capture["points"]
            ],
        )
    )
    with_lens = [p for p in capture["points"] if "max_rel_diff" in p["transformer_lens"]]
    parts.append(
        bar_chart(
            "capture vs TransformerLens: max relative diff per hook point (log10)",
            [f"{p['hook']}@{p['layer']}" for p in with_lens],
            [p["transformer_lens"]["max_rel_diff"] for p in with_lens],
            log=True,
            limit=with_lens[0]["transformer_lens"]["bar"] if with_lens else None,
        )
    )
    encoders = report["encoders"]
    keys = ["flips", "flips_away_from_threshold", "max_abs_diff", "value_excess", "top10_set_agreement"]
    parts.append("<h2>Encoders against the float64 oracle</h2>")
    parts.append(
        _table(
            ["set", "layer", "schema", "tokens", "mi-oracle", *keys, "SAELens", *keys],
            [
                [
                    escape(e["set"]),
                    e["layer"],
                    escape(e["schema"]),
                    e["n_tokens"],
                    *_peer_cells(e["project"], keys),
                    *_peer_cells(e["saelens"], keys),
                ]
                for e in encoders
            ],
        )
    )
    labels = [f"{e['set']}@{e['layer']}" for e in encoders]
    parts.append(
        bar_chart(
            "mi-oracle encoder: active-set flips per layer", labels, [e["project"]["flips"] for e in encoders]
        )
    )
    if encoders:
        parts.append(f"<p class='muted'>{escape(encoders[0]['circuit_tracer'])}</p>")
    metrics = report["metrics"]
    l0_labels = [f"{name}@{layer}" for name, m in metrics.items() for layer in sorted(m["layers"], key=int)]
    parts.append(
        bar_chart(
            "mean L0 per layer",
            l0_labels,
            [m["layers"][k]["mean_l0"] for m in metrics.values() for k in sorted(m["layers"], key=int)],
        )
    )
    parts.append(
        bar_chart(
            "FVU per layer",
            l0_labels,
            [m["layers"][k]["fvu"] for m in metrics.values() for k in sorted(m["layers"], key=int)],
        )
    )
    parts.append("<h2>Candidates</h2>")
    if not report["candidates"]:
        parts.append("<p class='muted'>no candidate folder configured (crossval.candidates)</p>")
    for c in report["candidates"]:
        verdict = _verdict(c["grade"] != "fail") + (" (exact)" if c["grade"] == "exact" else "")
        parts.append(f"<h3>{escape(c['reference'])} ({escape(c.get('kind', '?'))}): {verdict}</h3>")
        parts.append(f"<p><code>{escape(c['candidate'])}</code>. Bars: {escape(c.get('bars', ''))}</p>")
        if c["failures"]:
            parts.append(
                "<ul>"
                + "".join(f"<li class='failure'>{escape(f)}</li>" for f in c["failures"][:200])
                + "</ul>"
            )
    parts.append(f"<h2>Devices</h2><p>{escape(report['devices']['status'])}</p>")
    parts.append("<h3>Native kernels against portable numerics</h3>")
    parts.append(kernels_html(report["devices"].get("kernels", [])))
    parts.append("<h2>Provenance of every input</h2>")
    parts.append(
        _table(
            ["input", "sha256"],
            [[f"<code>{escape(i['path'])}</code>", f"<code>{i['sha256']}</code>"] for i in report["inputs"]],
        )
    )
    env = report["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["packages"].items() if v)
    hardware = env["hardware"]
    parts.append(
        f"<p class='muted'>Python {escape(env['python'])} on {escape(env['platform'])}; "
        f"{escape(versions)}. CPU {escape(str(hardware['cpu']['vendor']))} "
        f"{escape(str(hardware['cpu']['model']))} ({escape(', '.join(hardware['cpu']['flags']))}); "
        f"torch dispatches to {escape(str(hardware['torch_cpu_capability']))}, "
        f"MKL branch {escape(str(hardware['mkl_branch']))}.</p>"
    )
    parts.append("</body></html>\n")
    return "".join(parts)


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
