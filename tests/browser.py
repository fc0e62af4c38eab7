"""Render a page in Debian's headless chromium: a PNG, the DOM, and what its console said."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0"]


def chromium() -> str:
    """The chromium binary; its absence fails the test (make test installs it as root)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "chromium is not installed: run `make system-packages` as root (apt-get install chromium)"
    return found


def render(page: Path, png: Path) -> tuple[str, list[str]]:
    """(the rendered DOM, console lines) of ``page``; writes a screenshot to ``png``."""
    url = Path(page).resolve().as_uri()
    shot = subprocess.run(
        [chromium(), *FLAGS, "--window-size=1200,2400", f"--screenshot={png}", url],
        capture_output=True,
        text=True,
        timeout=120,
    )
    dom = subprocess.run([chromium(), *FLAGS, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    console = [line for line in (shot.stderr + dom.stderr).splitlines() if ":CONSOLE" in line]
    return dom.stdout, console


def layout_width(page: Path, scratch: Path, viewport: int = 1280) -> tuple[int, int]:
    """(the document's scroll width, the viewport's client width) at ``viewport`` px: a copy of the
    page with one script that writes both into the DOM, read back from chromium's dump."""
    probe = Path(scratch) / f"width-probe-{Path(page).name}"
    script = (
        "<script>document.body.setAttribute('data-widths', document.documentElement.scrollWidth + ','"
        " + document.documentElement.clientWidth)</script>"
    )
    probe.write_text(Path(page).read_text(encoding="utf-8").replace("</body>", script + "</body>"))
    dom = subprocess.run(
        [chromium(), *FLAGS, f"--window-size={viewport},900", "--dump-dom", probe.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    found = re.search(r'data-widths="(\d+),(\d+)"', dom)
    assert found, f"the width probe did not run in chromium: {dom[:500]}"
    return int(found[1]), int(found[2])
