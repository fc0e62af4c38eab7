"""Registrations from outside the package: ``MI_ORACLE_PLUGINS`` names modules (comma-separated,
importable) that register reference kinds (``references.kinds.register``) and model families
(``references.families.register_family``) when the registries load.

Every process that reads a registry loads them: the workflow's parse, each job, and each
portable-numerics child (which inherits the variable), so a registered kind or family is made and
graded like a built-in one.
"""

from __future__ import annotations

import importlib
import os

from mi_oracle.errors import ConfigError

VARIABLE = "MI_ORACLE_PLUGINS"


def load_plugins() -> list[str]:
    """Import every module ``MI_ORACLE_PLUGINS`` names; one that cannot be imported is an error
    naming it and the variable."""
    names = [name.strip() for name in os.environ.get(VARIABLE, "").split(",") if name.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ConfigError(f"{VARIABLE}: cannot import {name!r} ({error})") from error
    return names
