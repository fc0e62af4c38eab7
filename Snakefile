"""mi-oracle: model fetch -> curation -> capture -> encoding -> references -> reports."""

import re
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("9.19")

# This clone's package first, ahead of an editable install of another checkout.
SRC = str(Path(workflow.basedir).resolve() / "src")
while SRC in sys.path:
    sys.path.remove(SRC)
sys.path.insert(0, SRC)

from mi_oracle import layout
from mi_oracle.config import load_schema, validate_config, with_sorted_keys
from mi_oracle.references.suite_config import load_suite_schema

# The embedded default, unless --configfile names another: Snakemake would otherwise merge that
# file over this one, and keys it leaves out (references, crossval) would leak in.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


SUITE = "candle_mi" in config  # config/candle-mi.yaml: every reference candle-mi commits
SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"
validate_config(
    config,
    (
        load_suite_schema(SCHEMAS / "candle-mi.schema.yaml", SCHEMAS / "config.schema.yaml")
        if SUITE
        else load_schema(SCHEMAS / "config.schema.yaml")
    ),
    sources=workflow.overwrite_configfiles or ["config/config.yaml"],
)
# one key order whatever the file's: Snakemake compares params by their text
SORTED_CONFIG = with_sorted_keys(config)
config.clear()
config.update(SORTED_CONFIG)


report: "workflow/report/workflow.rst"


if SUITE:

    include: "workflow/rules/candle_mi_common.smk"
    include: "workflow/rules/candle_mi.smk"

    rule all:
        default_target: True
        input:
            layout.RESURRECTION_JSON,
            layout.RESURRECTION_MD,
            layout.RESURRECTION_HTML,

else:

    include: "workflow/rules/common.smk"
    include: "workflow/rules/model.smk"
    include: "workflow/rules/capture.smk"
    include: "workflow/rules/dictionaries.smk"
    include: "workflow/rules/encoding.smk"
    include: "workflow/rules/references.smk"
    include: "workflow/rules/crossval_inputs.smk"
    include: "workflow/rules/crossval.smk"

    rule all:
        default_target: True
        input:
            model_dir(),
            all_activations,
            [manifest_path(name) for name in SETS],
            [metrics_path(name) for name in SETS],
            all_references(),
            layout.report_path(RUN),
