"""The package's HTML pages: Jinja templates (``templates/``) rendered with autoescaping.

Low in the package, so that every page (the cross-validation report, the resurrection table)
renders through it without importing another stage's module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2


def number(value: Any) -> str:
    """A float to 3 significant digits (the ``g`` filter), anything else as text."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["g"] = number
    return environment


_TEMPLATES = _environment()


def render_template(name: str, **context: Any) -> str:
    """One of the package's templates, rendered with ``context``."""
    return _TEMPLATES.get_template(name).render(context)
