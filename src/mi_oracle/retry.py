"""Try a step again only when its failure is transient: a network error, a busy hub, a corrupt download.

Snakemake's ``retries`` reruns a job whatever failed it, so a malformed YAML or a gated repository
was tried three times; steps that download call ``retry_transient`` instead, and no rule retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from mi_oracle.errors import TransientError

log = logging.getLogger(__name__)
T = TypeVar("T")
WAITS_S = (2.0, 10.0)  # before the second and the third attempt


def retry_transient(
    step: Callable[..., T], *args: object, waits_s: Sequence[float] = WAITS_S, **kwargs: object
) -> T:
    """``step(*args, **kwargs)``, tried again after each wait in ``waits_s`` while it fails with a
    TransientError; any other error, and the last transient one, propagates at once."""
    for attempt, wait in enumerate([*waits_s, None], start=1):
        try:
            return step(*args, **kwargs)
        except TransientError as error:
            if wait is None:
                raise
            log.warning("attempt %d failed (%s); trying again in %.0f s", attempt, error, wait)
            time.sleep(wait)
    raise AssertionError("unreachable")
