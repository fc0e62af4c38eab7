"""Single files from hub repositories, at a resolved commit, hash-checked against what the hub announced.

``hf_hub_download`` stores each file in the Hugging Face cache under a blob named by the hash the
hub announced for it (sha256 for LFS files, the git blob sha1 otherwise); the content is checked
against that name, online and offline alike. A mismatch removes the cached copy, so the step's
next attempt (``mi_oracle.retry``) downloads it again.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RevisionResolutionError,
)

from mi_oracle.dictionaries.locations import HubFile
from mi_oracle.errors import DictionaryError, FetchError
from mi_oracle.models.hub import check_cached_file, explain_hub_error

log = logging.getLogger(__name__)


class HubFiles:
    """Resolve revisions once per repository and download files of the resolved commits."""

    def __init__(self, revision_key: str, token: str | None = None) -> None:
        self.api = HfApi(token=token)
        self.token = token
        self.revision_key = revision_key
        self._commits: dict[tuple[str, str], str] = {}

    @property
    def offline(self) -> bool:
        return bool(constants.HF_HUB_OFFLINE)

    def commit(self, repo: str, revision: str | None) -> str:
        """The commit ``revision`` (default ``main``) of ``repo`` names."""
        revision = revision or "main"
        if (repo, revision) not in self._commits:
            try:
                resolved = self.api.resolve_revision(repo, revision=revision, local_files_only=self.offline)
            except RevisionResolutionError as error:
                raise self._explain(error.__cause__ or error, repo, revision) from error
            except (HfHubHTTPError, httpx2.TransportError) as error:
                raise self._explain(error, repo, revision) from error
            log.info("%s@%s is commit %s", repo, revision, resolved.resolved)
            self._commits[(repo, revision)] = resolved.resolved
        return self._commits[(repo, revision)]

    def _explain(self, error: Exception, repo: str, revision: str) -> FetchError:
        if self.offline:
            return FetchError(
                f"{repo}@{revision} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
                "HF_HUB_OFFLINE is set: fetch it once with network access, or point HF_HOME at a cache "
                "that has it"
            )
        return explain_hub_error(error, repo, revision, self.revision_key)

    def download(self, file: HubFile) -> tuple[Path, str]:
        """(cached path, commit) of ``file``, its content checked against the announced hash."""
        commit = self.commit(file.repo, file.revision)
        try:
            path = Path(hf_hub_download(file.repo, file.path, revision=commit, token=self.token))
        except EntryNotFoundError as error:
            raise DictionaryError(
                f"{file.uri}: {file.path} does not exist in {file.repo} at commit {commit}"
            ) from error
        except LocalEntryNotFoundError as error:
            raise self._explain(error, file.repo, file.revision or "main") from error
        except (HfHubHTTPError, httpx2.TransportError) as error:
            raise self._explain(error, file.repo, file.revision or "main") from error
        check_cached_file(path, path.resolve().name, file.uri)
        return path, commit

    def list_files(self, repo: str, revision: str | None) -> list[str]:
        """Every file path of ``repo`` at ``revision`` (from the cache's snapshot when offline)."""
        commit = self.commit(repo, revision)
        if self.offline:
            snapshot = (
                Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "snapshots" / commit
            )
            return sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file())
        try:
            info = self.api.model_info(repo, revision=commit)
        except (HfHubHTTPError, httpx2.TransportError) as error:
            raise self._explain(error, repo, revision or "main") from error
        return sorted(sibling.rfilename for sibling in info.siblings or [])
