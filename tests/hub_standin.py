"""A stand-in for the Hugging Face hub's file endpoints, served on 127.0.0.1 for tests.

It answers the requests huggingface_hub makes for ``model_info``, ``list_repo_tree``,
``hf_hub_download`` and ``snapshot_download`` with the hub's status codes, headers
(``X-Repo-Commit``, ``ETag``, ``X-Linked-Etag``, ``X-Linked-Size``) and error codes
(``X-Error-Code``), for repositories the tests build in memory. Point ``HF_ENDPOINT``
at :attr:`StandInHub.url`.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".npz", ".bin", ".gguf")


def git_blob_sha1(data: bytes) -> str:
    """Git's object id of a blob: what the hub calls a file's blob id."""
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@dataclass
class StandInFile:
    """One file: the bytes announced (hashes) and the bytes actually served."""

    data: bytes
    lfs_sha256: str | None = None
    served: bytes | None = None
    corrupt_downloads_left: int | None = None  # None: ``served`` for good

    @property
    def is_lfs(self) -> bool:
        return self.lfs_sha256 is not None

    def body(self, download: bool = False) -> bytes:
        """The bytes to serve; a download counts against ``corrupt_downloads_left``."""
        if self.served is None:
            return self.data
        served = self.served
        if download and self.corrupt_downloads_left is not None:
            self.corrupt_downloads_left -= 1
            if self.corrupt_downloads_left <= 0:
                self.served = None
        return served


@dataclass
class StandInRepo:
    """A repository: one commit per revision name, and who may read it."""

    commits: dict[str, dict[str, StandInFile]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    gated: bool = False
    token: str | None = None


class StandInHub:
    """Serve repositories held in memory over HTTP, the way the hub serves them."""

    def __init__(self) -> None:
        self.repos: dict[str, StandInRepo] = {}
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> StandInHub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_repo(
        self,
        repo_id: str,
        files: dict[str, bytes],
        revision: str = "main",
        gated: bool = False,
        token: str | None = None,
    ) -> str:
        """Publish ``files`` as a new commit of ``repo_id`` named ``revision``; return its sha."""
        repo = self.repos.setdefault(repo_id, StandInRepo())
        repo.gated = repo.gated or gated
        repo.token = token or repo.token
        stored = {
            name: StandInFile(
                data=data,
                lfs_sha256=hashlib.sha256(data).hexdigest() if name.endswith(LFS_SUFFIXES) else None,
            )
            for name, data in files.items()
        }
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(stored):
            digest.update(name.encode() + git_blob_sha1(stored[name].data).encode())
        digest.update(revision.encode())
        commit = digest.hexdigest()
        repo.commits[commit] = stored
        repo.refs[revision] = commit
        return commit

    def add_folder(self, repo_id: str, folder: Path, revision: str = "main", **kwargs: object) -> str:
        """Publish every file under ``folder`` (relative paths kept)."""
        files = {
            str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(Path(folder).rglob("*"))
            if path.is_file()
        }
        return self.add_repo(repo_id, files, revision=revision, **kwargs)

    def corrupt(self, repo_id: str, revision: str, filename: str, downloads: int | None = None) -> None:
        """Serve ``filename`` with one byte flipped while announcing the original hashes (for the next
        ``downloads`` downloads only, when given)."""
        repo = self.repos[repo_id]
        entry = repo.commits[repo.refs.get(revision, revision)][filename]
        flipped = bytearray(entry.data)
        flipped[len(flipped) // 2] ^= 0xFF
        entry.served = bytes(flipped)
        entry.corrupt_downloads_left = downloads

    def resolve(self, repo_id: str, revision: str) -> tuple[str, dict[str, StandInFile]] | None:
        repo = self.repos[repo_id]
        commit = repo.refs.get(revision, revision)
        if commit in repo.commits:
            return commit, repo.commits[commit]
        return None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._dispatch(send_body=False)

            def do_GET(self) -> None:
                self._dispatch(send_body=True)

            def _dispatch(self, send_body: bool) -> None:
                path = urlsplit(self.path).path
                hub.requests.append((self.command, path))
                api = re.fullmatch(r"/api/models/([^/]+/[^/]+)/(revision|tree)/([^/]+)(/.*)?", path)
                resolve = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
                if api:
                    repo_id, kind, revision = api.group(1), api.group(2), unquote(api.group(3))
                    self._api(repo_id, kind, revision, send_body)
                elif resolve:
                    repo_id, revision, filename = (unquote(g) for g in resolve.groups())
                    self._file(repo_id, revision, filename, send_body)
                else:
                    self._error(404, "RepoNotFound", f"no route for {path}", send_body)

            def _authorised(self, repo_id: str, send_body: bool) -> bool:
                if repo_id not in hub.repos:
                    self._error(401, "RepoNotFound", "Repository Not Found", send_body)
                    return False
                repo = hub.repos[repo_id]
                if repo.gated and self.headers.get("authorization") != f"Bearer {repo.token}":
                    self._error(401, "GatedRepo", f"Access to model {repo_id} is restricted.", send_body)
                    return False
                return True

            def _readable(self, repo_id: str, revision: str, send_body: bool):
                """(commit, files) when the caller may read that revision; else answer the error."""
                if not self._authorised(repo_id, send_body):
                    return None
                found = hub.resolve(repo_id, revision)
                if found is None:
                    self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", send_body)
                return found

            def _api(self, repo_id: str, kind: str, revision: str, send_body: bool) -> None:
                found = self._readable(repo_id, revision, send_body)
                if found is None:
                    return
                commit, files = found
                if kind == "revision":
                    payload: object = {
                        "_id": hashlib.md5(repo_id.encode()).hexdigest()[:24],
                        "id": repo_id,
                        "modelId": repo_id,
                        "sha": commit,
                        "private": False,
                        "gated": "manual" if hub.repos[repo_id].gated else False,
                        "disabled": False,
                        "tags": [],
                        "siblings": [self._sibling(name, entry) for name, entry in sorted(files.items())],
                    }
                else:
                    payload = [self._tree_entry(name, entry) for name, entry in sorted(files.items())]
                self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"}, send_body)

            @staticmethod
            def _sibling(name: str, entry: StandInFile) -> dict:
                sibling: dict = {
                    "rfilename": name,
                    "size": len(entry.data),
                    "blobId": git_blob_sha1(entry.data),
                }
                if entry.is_lfs:
                    sibling["lfs"] = {"sha256": entry.lfs_sha256, "size": len(entry.data), "pointerSize": 134}
                return sibling

            @staticmethod
            def _tree_entry(name: str, entry: StandInFile) -> dict:
                item: dict = {
                    "type": "file",
                    "oid": git_blob_sha1(entry.data),
                    "size": len(entry.data),
                    "path": name,
                }
                if entry.is_lfs:
                    item["lfs"] = {"oid": entry.lfs_sha256, "size": len(entry.data), "pointerSize": 134}
                return item

            def _file(self, repo_id: str, revision: str, filename: str, send_body: bool) -> None:
                found = self._readable(repo_id, revision, send_body)
                if found is None:
                    return
                commit, files = found
                if filename not in files:
                    self._error(404, "EntryNotFound", f"{filename} does not exist", send_body)
                    return
                entry = files[filename]
                body = entry.body(download=send_body)
                headers = {"X-Repo-Commit": commit, "Content-Type": "application/octet-stream"}
                if entry.is_lfs:
                    headers["X-Linked-Etag"] = f'"{entry.lfs_sha256}"'
                    headers["X-Linked-Size"] = str(len(entry.data))
                    headers["ETag"] = f'"{entry.lfs_sha256}"'
                else:
                    headers["ETag"] = f'"{git_blob_sha1(entry.data)}"'
                status = 200
                byte_range = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                if byte_range:
                    start = int(byte_range.group(1))
                    headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
                    body, status = body[start:], 206
                self._send(status, body, headers, send_body)

            def _error(self, status: int, code: str, message: str, send_body: bool) -> None:
                body = json.dumps({"error": message}).encode()
                headers = {
                    "X-Error-Code": code,
                    "X-Error-Message": message,
                    "Content-Type": "application/json",
                }
                self._send(status, body, headers, send_body)

            def _send(self, status: int, body: bytes, headers: dict[str, str], send_body: bool) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if send_body:
                    self.wfile.write(body)

        return Handler
