"""A store's output beyond this machine: its partitions published to an fsspec URL.

A run works on a local copy of the output folder (the export patch, the history and the
run page read and write plain files); under its run lock it fetches the store's
partitions when the remote holds a newer publication than the local copy, and after its
writes it publishes them back:

    <url>/exports/source=<name>/...     (exports, key files, manifests, history)
    <url>/reports/source=<name>/...     (one folder per run)
    <url>/exports/source=<name>/.magsync/published.json   (the publication: written last)

On an object store a PUT is atomic (an object appears whole when its upload completes)
and a rename is a copy then a delete, so nothing is renamed: each file is put at its
final key, data first, then the exports' manifests (which vouch for an export and its key
file), then the publication listing every file with its size and digest. Files the
publication no longer lists are deleted after it lands. A reader following the manifests
or the publication never sees a half-written set; a run that dies mid-publish leaves the
previous publication in force, and the next run publishes again (it uploads whatever
differs from what the publication lists).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import blake2b
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from magsync.load.layout import EXPORTS, exports_dir, reports_dir
from magsync.load.parquet_export import STATE_DIR
from magsync.transform.errors import ConfigError, MagsyncError

if TYPE_CHECKING:
    from magsync.load.report import RunReport

log = logging.getLogger("magsync.load")

PUBLICATION = "published.json"
CHUNK = 1 << 20


class PublishError(MagsyncError):
    """The output could not be published (or fetched): the target holds the run; the next
    run publishes again."""


@dataclass(frozen=True)
class Remote:
    """An fsspec file system and the root (bucket/prefix) of the output on it."""

    url: str
    fs: Any  # fsspec.AbstractFileSystem (untyped)
    root: str

    def path(self, rel: str) -> str:
        """The remote path of a path relative to the output root."""
        return f"{self.root}/{rel}"


def open_remote(url: str, endpoint_url: str | None = None) -> Remote:
    """The remote output at `url`; credentials come from the file system's own chain (for
    S3 the AWS_* environment, config files, instance roles)."""
    import fsspec

    protocol = url.split("://", 1)[0]
    if protocol in ("file", "local"):
        raise ConfigError(f"output {url}: give a local or mounted folder as a plain path")
    options: dict[str, Any] = {"skip_instance_cache": True}  # fresh listings each run
    if endpoint_url and protocol in ("s3", "s3a"):
        options["endpoint_url"] = endpoint_url
    try:
        fs, root = fsspec.core.url_to_fs(url, **options)
    except (ImportError, ValueError) as err:
        raise ConfigError(f"output {url}: {err}") from None
    return Remote(url, fs, root.rstrip("/"))


def partitions(source: str) -> tuple[str, str]:
    """The store's partitions, relative to the output root."""
    return (exports_dir(Path(), source).as_posix(), reports_dir(Path(), source).as_posix())


def publication_rel(source: str) -> str:
    """Where the store's publication lives, relative to the output root."""
    return f"{partitions(source)[0]}/{STATE_DIR}/{PUBLICATION}"


def publish(local: Path, remote: Remote, source: str, run_id: str) -> list[str]:
    """Uploads what changed in the store's partitions since the remote's publication,
    data before manifests, then the new publication; deletes what it no longer lists.
    Returns the relative paths in upload order (the publication last)."""
    mine = _read_local(local, source)
    theirs = _read_remote(remote, source) or {"files": {}}
    files = _scan(local, source, mine)
    changed = [rel for rel, meta in files.items()
               if theirs["files"].get(rel, {}).get("blake2b") != meta["blake2b"]]
    order = sorted(changed, key=_upload_rank)
    try:
        for rel in order:
            remote.fs.put_file(str(local / rel), remote.path(rel))
        marker = {"generation": uuid.uuid4().hex, "run_id": run_id,
                  "published_at": datetime.now(UTC).isoformat(),
                  "files": {rel: {"size": m["size"], "blake2b": m["blake2b"]}
                            for rel, m in files.items()}}
        remote.fs.pipe_file(remote.path(publication_rel(source)), _dumps(marker))
        _sweep(remote, source, set(files))
    except OSError as err:
        raise PublishError(f"publishing to {remote.url} failed: {err}") from err
    _write_local(local, source, marker, files)
    return [*order, publication_rel(source)]


def fetch(local: Path, remote: Remote, source: str) -> list[str]:
    """Makes the local copy of the store's partitions the remote's publication when it is
    missing or older (another machine published since); keeps it when it is the same
    publication (maybe with changes a crashed run left unpublished: the run publishes
    them). Returns the relative paths downloaded."""
    try:
        theirs = _read_remote(remote, source)
        mine = _read_local(local, source)
        if theirs is None or (mine and mine.get("generation") == theirs["generation"]):
            return []
        have = _scan(local, source, mine)
        wanted = theirs["files"]
        order = sorted((rel for rel, meta in wanted.items()
                        if have.get(rel, {}).get("blake2b") != meta["blake2b"]),
                       key=_upload_rank)
        for rel in order:
            _download(remote, rel, local / rel)
    except OSError as err:
        raise PublishError(f"fetching from {remote.url} failed: {err}") from err
    exports = partitions(source)[0]
    for rel in set(have) - set(wanted):  # the exports mirror the publication; reports of
        if rel.startswith(exports + "/"):  # runs it lacks wait here for the next publish
            (local / rel).unlink(missing_ok=True)
    _write_local(local, source, theirs, _scan(local, source, None))
    return order


def fetch_newest_report(remote: Remote, source: str, local: Path) -> Path | None:
    """Downloads the newest run folder the store's publication lists into the local
    copy (run ids sort by start); returns it, or None when nothing is published."""
    theirs = _read_remote(remote, source)
    prefix = partitions(source)[1] + "/"
    runs = sorted({rel[len(prefix):].split("/", 1)[0] for rel in (theirs or {"files": {}})
                   ["files"] if rel.startswith(prefix)})
    if not runs:
        return None
    newest: str = prefix + runs[-1]
    for rel in (r for r in theirs["files"] if r.startswith(newest + "/")):  # type: ignore[index]
        _download(remote, rel, local / rel)
    return local / newest


def put_folder(local: Path, remote: Remote, rel_folder: str, last: str) -> list[str]:
    """Uploads a new folder (a fleet report), the file named `last` after the others."""
    folder = local / rel_folder
    names = sorted((p.name for p in folder.iterdir() if p.is_file()),
                   key=lambda name: (name == last, name))
    for name in names:
        remote.fs.put_file(str(folder / name), remote.path(f"{rel_folder}/{name}"))
    return names


def _upload_rank(rel: str) -> tuple[int, str]:
    """Data first, then the exports' manifests (which vouch for an export and its keys)."""
    parts = PurePosixPath(rel).parts
    manifest = parts[0] == EXPORTS and STATE_DIR in parts and rel.endswith(".json")
    return (1 if manifest else 0, rel)


def _files(local: Path, source: str) -> Iterator[tuple[str, Path]]:
    """The store's files under the local copy, minus temporary files and the publication."""
    for part in partitions(source):
        folder = local / part
        for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
            rel = path.relative_to(local).as_posix()
            if path.is_file() and not path.name.endswith(".tmp") \
                    and rel != publication_rel(source):
                yield rel, path


def _scan(local: Path, source: str, known: dict[str, Any] | None) -> dict[str, Any]:
    """Size and digest of each local file; a digest is reused when the file's size and
    mtime are those recorded when it was last published or fetched."""
    seen = (known or {}).get("local", {})
    out: dict[str, Any] = {}
    for rel, path in _files(local, source):
        stat = path.stat()
        was = seen.get(rel)
        if was and was["size"] == stat.st_size and was["mtime_ns"] == stat.st_mtime_ns:
            digest = was["blake2b"]
        else:
            digest = _digest(path)
        out[rel] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "blake2b": digest}
    return out


def _digest(path: Path) -> str:
    h = blake2b(digest_size=16)
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _download(remote: Remote, rel: str, dest: Path) -> None:
    """Downloads to a temporary file beside `dest`, then renames it into place."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.fetch.tmp")
    remote.fs.get_file(remote.path(rel), str(tmp))
    tmp.replace(dest)


def _sweep(remote: Remote, source: str, keep: set[str]) -> None:
    """Deletes the store's remote files the publication does not list (pruned reports,
    compacted history, what a crashed publish left)."""
    gone = []
    remote.fs.invalidate_cache()  # listings cached before the uploads are stale
    for part in partitions(source):
        base = remote.path(part)
        if not remote.fs.exists(base):
            continue
        for path in remote.fs.find(base):
            rel = path[len(remote.root) + 1:]
            if rel not in keep and rel != publication_rel(source):
                gone.append(path)
    if gone:
        remote.fs.rm(gone)


def _read_remote(remote: Remote, source: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(remote.fs.cat_file(remote.path(publication_rel(source))))
    except FileNotFoundError:
        return None
    return data


def _read_local(local: Path, source: str) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((local / publication_rel(source)).read_bytes())
    except (OSError, ValueError):
        return None
    return data


def _write_local(local: Path, source: str, marker: dict[str, Any],
                 files: dict[str, Any]) -> None:
    """The publication this copy now matches, with the local sizes and mtimes whose
    digests it vouches for."""
    path = local / publication_rel(source)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(_dumps({**marker, "local": files}))
    os.replace(tmp, path)


def _dumps(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()


def fetch_output(remote: Remote, out: Path, name: str, report: RunReport) -> None:
    """Brings the local copy up to the remote's publication (another machine's runs);
    call it under the run lock, so nobody publishes this store meanwhile."""
    with report.timed("fetch"):
        fetched = fetch(out, remote, name)
    report.notes.append(f"output published to {remote.url}")
    if fetched:
        log.info("fetched %d files of store %s from %s", len(fetched), name, remote.url)


def publish_run(remote: Remote, out: Path, name: str, run_id: str,
                report: RunReport) -> list[str]:
    """Publishes the store's exports and reports. A failure fails a run that had
    succeeded (the target holds it; the next run publishes again) and is only logged when
    the run had failed already (its own error says more)."""
    try:
        order = publish(out, remote, name, run_id)
    except PublishError as err:
        if report.status != "done":
            log.warning("%s", err)
            return []
        err.report = report.to_dict()
        raise
    log.info("published %d files of store %s to %s", len(order), name, remote.url)
    return order
