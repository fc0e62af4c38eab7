"""Reference kinds, one module each, behind one registry (shaped like ``mi_oracle.formats``).

The config's checks, the reference job, the checker, the resurrection grader and the report ask
this registry only; adding a kind is one module implementing ``ReferenceKind`` (``base.py``) and
one line in ``_KINDS`` (or one :func:`register` call, from a module ``MI_ORACLE_PLUGINS`` names:
``mi_oracle.plugins``).
"""

from __future__ import annotations

from mi_oracle.errors import ConfigError
from mi_oracle.plugins import load_plugins
from mi_oracle.references.item import ReferenceItem
from mi_oracle.references.kinds.base import Bars, BuildContext, ReferenceKind, Unmade
from mi_oracle.references.kinds.clt import Clt
from mi_oracle.references.kinds.forward import Forward
from mi_oracle.references.kinds.longrope import Longrope
from mi_oracle.references.kinds.plt import Plt
from mi_oracle.references.kinds.quantized import Quantized
from mi_oracle.references.kinds.sae import Sae

_KINDS: list[ReferenceKind] = [Forward(), Longrope(), Quantized(), Plt(), Clt(), Sae()]
KINDS: dict[str, ReferenceKind] = {kind.name: kind for kind in _KINDS}

__all__ = ["KINDS", "Bars", "BuildContext", "ReferenceKind", "Unmade", "bars_for", "kind_of", "register"]


def register(kind: ReferenceKind) -> None:
    """Add (or replace) a kind."""
    KINDS[kind.name] = kind


def kind_named(name: str, where: str = "references.items") -> ReferenceKind:
    """The kind ``name``; an unknown one is a ConfigError naming the kinds known."""
    if name not in KINDS:
        raise ConfigError(f"{where}: kind {name!r} is not supported (supported: {', '.join(KINDS)})")
    return KINDS[name]


def kind_of(item: ReferenceItem) -> ReferenceKind:
    """The kind of ``item`` (an unknown one is a ConfigError naming the reference)."""
    return kind_named(item.kind, f"references.items[{item.name}]")


def bars_for(kind: str, device: str = "cpu", scheme: str | None = None) -> Bars:
    """The bars candle-mi's test of a ``kind`` reference made on ``device`` holds it to."""
    return kind_named(kind).bars(device, scheme)


load_plugins()  # last: a plugin registers through the functions above
