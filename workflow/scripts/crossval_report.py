"""Snakemake adapter for rule crossval_report: see mi_oracle.crossval.report."""

from pathlib import Path

import _src_path  # noqa: F401

from mi_oracle.crossval.report import build_report, write_report
from mi_oracle.references.item import ReferenceFile
from mi_oracle.rule_logging import logged_to

with logged_to(snakemake.log[0]):
    references = {name: ReferenceFile.from_json(entry) for name, entry in snakemake.params.references.items()}
    native = {name: ReferenceFile.from_json(entry) for name, entry in snakemake.params.native.items()}
    candidates = snakemake.params.candidates
    report = build_report(
        Path(snakemake.input.capture),
        [Path(path) for path in snakemake.input.encoders],
        dict(zip(snakemake.params.sets, map(Path, snakemake.input.metrics), strict=True)),
        {name: (file.kind, Path(file.path)) for name, file in references.items()},
        Path(candidates) if candidates else None,
        {name: Path(file.path) for name, file in native.items()},
        peers={peer: Path(folder) for peer, folder in snakemake.params.peers.items()},
        compare_run=tuple(snakemake.params.compare_run) if snakemake.params.compare_run else None,
    )
    write_report(
        report, Path(snakemake.output.html), Path(snakemake.output.json), snakemake.params.report_only
    )
