"""Snakemake adapter for rule crossval_report: see mi_oracle.crossval.report."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.crossval.report import build_report, write_report
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    kinds = snakemake.params.kinds
    references = dict(zip(kinds, snakemake.input.references, strict=True))
    candidates = snakemake.params.candidates
    report = build_report(
        Path(snakemake.input.capture),
        [Path(path) for path in snakemake.input.encoders],
        dict(zip(snakemake.params.sets, map(Path, snakemake.input.metrics), strict=True)),
        {name: (kind, Path(references[name])) for name, kind in kinds.items()},
        Path(candidates) if candidates else None,
        dict(zip(kinds, map(Path, snakemake.input.native), strict=True)),
        peers={peer: Path(folder) for peer, folder in snakemake.params.peers.items()},
        compare_run=tuple(snakemake.params.compare_run) if snakemake.params.compare_run else None,
    )
    write_report(
        report, Path(snakemake.output.html), Path(snakemake.output.json), snakemake.params.report_only
    )
