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
from mi_oracle.model_config import upgrade_config

# The embedded default, unless --configfile names another: Snakemake would otherwise merge that
# file over this one, and keys it leaves out (references, crossval) would leak in.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


SOURCES = workflow.overwrite_configfiles or ["config/config.yaml"]
upgrade_config(config, ", ".join(str(source) for source in SOURCES))
# a config without a capture section makes references only (config/candle-mi.yaml)
CAPTURING = "capture" in config
validate_config(
    config,
    load_schema(Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"),
    sources=SOURCES,
)
# one key order whatever the file's: Snakemake compares params by their text
SORTED_CONFIG = with_sorted_keys(config)
config.clear()
config.update(SORTED_CONFIG)


report: "workflow/report/workflow.rst"


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
        all_references(),
        check_outputs(),
        capture_targets(),
        captured_activations,
