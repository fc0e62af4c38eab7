"""Source ``hub``: a pinned revision of a Hugging Face repository, hash-checked file by file.

Downloads go through the Hugging Face cache (``HF_HOME``), so ``HF_TOKEN``,
``HF_ENDPOINT`` and ``HF_HUB_OFFLINE`` work as everywhere else. Online, every file is
checked against the hash the hub announces for it (sha256 for LFS files, git blob sha1
otherwise); offline, against the name of the cache blob, which is that same hash.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx2
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
    RevisionResolutionError,
)

from mi_oracle.errors import FetchError, HashMismatchError, ModelFolderError, TransientFetchError
from mi_oracle.hashing import digest_file
from mi_oracle.json_files import read_json
from mi_oracle.models.folder import (
    SAFETENSORS_INDEX,
    required_files,
    select_small_files,
    weight_files,
)
from mi_oracle.models.provenance import place_model

log = logging.getLogger(__name__)


def endpoint() -> str:
    return constants.ENDPOINT.rstrip("/")


def explain_hub_error(
    error: Exception, repo: str, revision: str, revision_key: str = "model.revision"
) -> FetchError:
    """Turn a hub error into one that says what to do; ``revision_key`` names where the revision came from."""
    where = f"{endpoint()}/{repo}"
    if isinstance(error, GatedRepoError):
        return FetchError(
            f"{repo} is gated: accept its terms at {where} with your account, then set HF_TOKEN "
            "to a token of that account (or run `hf auth login`)"
        )
    if isinstance(error, RevisionNotFoundError):
        return FetchError(
            f"{repo} has no revision {revision!r}: set {revision_key} to a branch, tag or "
            f"commit that exists (see {where}/commits)"
        )
    if isinstance(error, RepositoryNotFoundError):
        return FetchError(
            f"{repo}: no such model repository at {endpoint()}, or it is private: check "
            "the repository id, and set HF_TOKEN if the repository is private"
        )
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        if status in (401, 403):
            return FetchError(
                f"{repo}: access refused (HTTP {status}); set HF_TOKEN to a token that can read it"
            )
        error_class = TransientFetchError if status == 429 or status >= 500 else FetchError
        return error_class(f"{repo}@{revision}: the hub answered HTTP {status}; try again later ({error})")
    return TransientFetchError(
        f"{repo}@{revision}: cannot reach {endpoint()} ({type(error).__name__}: {error}); check "
        "the network or HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use files already in the "
        "Hugging Face cache (HF_HOME)"
    )


def list_remote(api: HfApi, repo: str, commit: str) -> dict[str, str]:
    """The hash the hub announces for each top-level file of ``commit``."""
    info = api.model_info(repo, revision=commit, files_metadata=True)
    expected = {}
    for sibling in info.siblings or []:
        announced = sibling.lfs.sha256 if sibling.lfs is not None else sibling.blob_id
        if "/" not in sibling.rfilename and announced:
            expected[sibling.rfilename] = announced
    return expected


def choose_files(repo: str, commit: str, names: list[str], token: str | None) -> list[str]:
    """The top-level files a causal LM needs, reading the shard index first when there is one."""
    index = None
    if SAFETENSORS_INDEX in names:
        index_path = hf_hub_download(repo, SAFETENSORS_INDEX, revision=commit, token=token)
        index = read_json(Path(index_path), ModelFolderError)
    weights = weight_files(names, index, f"{repo}@{commit}")
    small = select_small_files(names)
    if "config.json" not in small:
        raise FetchError(f"{repo}@{commit}: no config.json; expected a Hugging Face model repository")
    return sorted(set(small) | set(weights))


def check_cached_file(path: Path, announced: str, label: str) -> None:
    """Check a cached file against the hash its source announced; on a mismatch drop it and fail.

    ``label`` names the file in the error, e.g. ``repo: name``.
    """
    digest = digest_file(path)
    if not digest.matches(announced):
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
        raise HashMismatchError(
            f"{label} has sha256 {digest.sha256} (git sha1 {digest.git_sha1}) but {announced} was "
            "announced; the cached copy was removed, so a retry downloads it again"
        )


def verify_snapshot(snapshot: Path, names: list[str], expected: dict[str, str] | None, repo: str) -> None:
    """Check every file against its announced hash; on a mismatch, drop the cached blob and fail."""
    for name in names:
        path = snapshot / name
        announced = expected.get(name) if expected is not None else path.resolve().name
        if not announced:
            raise FetchError(f"{repo}: {name} has no announced hash to check against")
        check_cached_file(path, announced, f"{repo}: {name}")


def fetch_from_hub(name: str, repo: str, revision: str, target: Path, token: str | None = None) -> dict:
    """Download ``repo`` at ``revision`` (only what a causal LM needs) and place it at ``target``."""
    api = HfApi(token=token)
    offline = constants.HF_HUB_OFFLINE
    try:
        if offline:
            log.info("HF_HUB_OFFLINE is set: using the Hugging Face cache for %s@%s", repo, revision)
            resolved = api.resolve_revision(repo, revision=revision, local_files_only=True)
            snapshot = Path(snapshot_download(repo, revision=resolved, local_files_only=True))
            cached = sorted(path.name for path in snapshot.iterdir() if path.is_file())
            verify_snapshot(snapshot, cached, None, repo)
            names = required_files(snapshot)
            verified_against = "the names of the Hugging Face cache blobs (their hashes)"
        else:
            resolved = api.resolve_revision(repo, revision=revision)
            log.info("%s@%s is commit %s", repo, revision, resolved.resolved)
            expected = list_remote(api, repo, resolved.resolved)
            names = choose_files(repo, resolved.resolved, sorted(expected), token)
            snapshot = Path(snapshot_download(repo, revision=resolved, allow_patterns=names, token=token))
            verify_snapshot(snapshot, names, expected, repo)
            verified_against = f"the hashes {endpoint()} announced for commit {resolved.resolved}"
    except (RevisionResolutionError, LocalEntryNotFoundError) as error:
        if not offline:
            raise explain_hub_error(error.__cause__ or error, repo, revision) from error
        raise FetchError(
            f"{repo}@{revision} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and "
            "HF_HUB_OFFLINE is set: fetch it once with network access, or point HF_HOME at a "
            "cache that has it"
        ) from error
    except (HfHubHTTPError, httpx2.TransportError) as error:
        raise explain_hub_error(error, repo, revision) from error

    return place_model(
        snapshot,
        names,
        target,
        name=name,
        source="hub",
        repo=repo,
        requested_revision=revision,
        resolved_revision=resolved.resolved,
        endpoint=endpoint(),
        verified_against=verified_against,
    )
