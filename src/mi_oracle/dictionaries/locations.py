"""Where a curation YAML or a dictionary file lives: ``hf://`` URIs, hub references, local paths."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import parse_qs, urlparse

from mi_oracle.errors import DictionaryError, PathEscapeError
from mi_oracle.layout import CURATION_FILE

_REPO_PART = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_HUB_REFERENCE = re.compile(
    rf"^(?P<repo>{_REPO_PART}/{_REPO_PART})(?:/(?P<subfolder>[^@]+?))?/?(?:@(?P<revision>[^@/][^@]*))?$"
)


@dataclass(frozen=True)
class HubFile:
    """One file of a hub repository at a revision (``None``: the default branch)."""

    repo: str
    path: str
    revision: str | None

    @property
    def uri(self) -> str:
        suffix = f"?revision={self.revision}" if self.revision else ""
        return f"hf://{self.repo}/{self.path}{suffix}"


def safe_relative_path(path: str, where: str) -> str:
    """``path`` as a clean relative POSIX path; refuse absolute paths and ``..`` segments."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise PathEscapeError(
            f"{where}: {path!r} is not a relative path inside its repository "
            "(absolute paths, '..' and backslashes are refused)"
        )
    return str(pure)


def parse_hf_uri(uri: str, where: str) -> HubFile:
    """``hf://ORG/REPO/PATH[?revision=REV]`` as a HubFile; ``where`` names the file and key for errors."""
    parsed = urlparse(uri)
    parts = parsed.path.lstrip("/").split("/", 1)
    if parsed.scheme != "hf" or not parsed.netloc or len(parts) != 2 or not parts[0] or not parts[1]:
        raise DictionaryError(f"{where}: {uri!r} is not an hf://ORG/REPO/PATH[?revision=REV] URI")
    unknown = sorted(set(parse_qs(parsed.query)) - {"revision"})
    if unknown:
        raise DictionaryError(f"{where}: {uri!r} has unknown query keys {unknown} (expected only revision)")
    revision = parse_qs(parsed.query).get("revision", [None])[0] or None
    return HubFile(f"{parsed.netloc}/{parts[0]}", safe_relative_path(parts[1], where), revision)


def is_hf_uri(text: str) -> bool:
    """True for an ``hf://`` URI."""
    return text.startswith("hf://")


def is_local_yaml(text: str) -> bool:
    """True when a curation reference names a local YAML file rather than a hub repository."""
    return not is_hf_uri(text) and text.lower().endswith((".yaml", ".yml"))


def parse_curation_reference(text: str, where: str) -> HubFile:
    """circuit-tracer's ``ORG/REPO[/SUBFOLDER][@REVISION]`` or an ``hf://`` URI of the YAML file itself."""
    if is_hf_uri(text):
        return parse_hf_uri(text, where)
    match = _HUB_REFERENCE.match(text)
    if not match:
        raise DictionaryError(
            f"{where}: {text!r} is neither a local .yaml file, an hf:// URI nor "
            "ORG/REPO[/SUBFOLDER][@REVISION]"
        )
    subfolder = match["subfolder"]
    path = f"{safe_relative_path(subfolder, where)}/{CURATION_FILE}" if subfolder else CURATION_FILE
    return HubFile(match["repo"], path, match["revision"])
