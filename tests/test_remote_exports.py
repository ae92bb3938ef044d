"""Exports and reports published to S3: moto's server on loopback, PostgreSQL as the
target two "machines" (two local working copies) share."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from magsync.load.remote import open_remote, publication_rel, publish
from tests.launcher import preload
from tests.s3server import duckdb_rows, moto_s3, s3, storage_options
from tests.servers import fresh_database
from tests.synchelp import sync

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample"
BUCKET = "magsync-test"
EXPORTS = "exports/source=default"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on loopback with one bucket; the credentials in the environment."""
    with moto_s3(BUCKET) as endpoint:
        yield endpoint


def remote(endpoint: str, prefix: str) -> dict[str, Any]:
    """The remote setting of a sync."""
    return {"url": f"s3://{BUCKET}/{prefix}", "endpoint_url": endpoint}


def read_exports(endpoint: str, prefix: str, table: str) -> pd.DataFrame:
    """An export as an analyst reads it from the bucket with pandas."""
    return pd.read_parquet(f"s3://{BUCKET}/{prefix}/{EXPORTS}/{table}.parquet",
                           storage_options=storage_options(endpoint))


def test_sync_publishes_exports_readable_by_pandas_and_duckdb(s3_endpoint: str,
                                                             tmp_path: Path) -> None:
    with fresh_database("postgresql") as db:
        state, report = sync(SAMPLE, tmp_path / "a", target={"url": db},
                             remote=remote(s3_endpoint, "one"), full=True)
        assert state.is_completed(), state.message
        local = pd.read_parquet(tmp_path / "a" / EXPORTS / "customers.parquet")
        remote_customers = read_exports(s3_endpoint, "one", "customers")
        assert len(remote_customers) == len(local) == report["counts"]["customer"]["created"]
        assert duckdb_rows(s3_endpoint, f"s3://{BUCKET}/one", "customers") \
            == {"default": len(local)}
        fs = s3(s3_endpoint)
        run_folder = f"{BUCKET}/one/reports/source=default/{report['run_id']}"
        assert {"summary.json", "index.html"} <= {Path(p).name for p in fs.ls(run_folder)}
        listing = fs.find(f"{BUCKET}/one", detail=True)
        marker = listing.pop(f"{BUCKET}/one/{publication_rel('default')}")
        assert marker["LastModified"] >= max(o["LastModified"] for o in listing.values())


def test_publication_goes_last_and_lists_every_file(s3_endpoint: str, tmp_path: Path) -> None:
    """Data, then the manifests vouching for it, then the publication; only what changed
    is sent again; what the local copy dropped leaves the bucket."""
    local = tmp_path / "copy"
    for rel, text in (("exports/source=s/t.parquet", "data"),
                      ("exports/source=s/.magsync/t.keys.arrow", "keys"),
                      ("exports/source=s/.magsync/t.json", "manifest"),
                      ("exports/source=s/.magsync/.t.json.tmp", "half-written"),
                      ("reports/source=s/r1/summary.json", "report")):
        (local / rel).parent.mkdir(parents=True, exist_ok=True)
        (local / rel).write_text(text)
    target = open_remote(f"s3://{BUCKET}/order", s3_endpoint)
    order = publish(local, target, "s", "r1")
    assert order == ["exports/source=s/.magsync/t.keys.arrow", "exports/source=s/t.parquet",
                     "reports/source=s/r1/summary.json", "exports/source=s/.magsync/t.json",
                     publication_rel("s")]
    (local / "exports/source=s/t.parquet").write_text("new data")
    (local / "reports/source=s/r1/summary.json").unlink()
    assert publish(local, target, "s", "r2") == ["exports/source=s/t.parquet",
                                                 publication_rel("s")]
    fs = s3(s3_endpoint)
    assert sorted(p.split("/order/", 1)[1] for p in fs.find(f"{BUCKET}/order")) == [
        "exports/source=s/.magsync/published.json", "exports/source=s/.magsync/t.json",
        "exports/source=s/.magsync/t.keys.arrow", "exports/source=s/t.parquet"]
    assert fs.cat_file(f"{BUCKET}/order/exports/source=s/t.parquet") == b"new data"


def edited_sample(folder: Path) -> Path:
    """The sample with its first customer's last name changed: one update to patch in."""
    folder.mkdir()
    (folder / "groups.csv").write_bytes((SAMPLE / "groups.csv").read_bytes())
    text = (SAMPLE / "customers.csv").read_text(encoding="utf-8")
    head, first, rest = text.split("\n", 2)
    assert first.startswith("sophie.smith1@") and ",Smith," in first
    (folder / "customers.csv").write_text(
        "\n".join([head, first.replace(",Smith,", ",Smyth,", 1), rest]), encoding="utf-8")
    return folder


def last_name(frame: pd.DataFrame) -> str:
    """The exported last name of the edited customer."""
    return str(frame.loc[frame["email"] == "sophie.smith1@example.com", "lastname"].item())


def test_another_machine_patches_the_published_exports(s3_endpoint: str,
                                                       tmp_path: Path) -> None:
    """Machine B starts with an empty output folder: it fetches A's publication under the
    run lock, patches it with its run's one update and publishes it with B's history."""
    settings = {"remote": remote(s3_endpoint, "two")}
    with fresh_database("postgresql") as db:
        first, one = sync(SAMPLE, tmp_path / "a", target={"url": db}, **settings)
        assert first.is_completed(), first.message
        second, two = sync(edited_sample(tmp_path / "src"), tmp_path / "b",
                           target={"url": db}, **settings)
        assert second.is_completed(), second.message
    assert two["counts"]["customer"]["updated"] == 1
    assert two["counts"]["customer"].get("created", 0) == 0
    exported = read_exports(s3_endpoint, "two", "customers")
    assert len(exported) == one["counts"]["customer"]["created"]
    assert last_name(exported) == "Smyth"
    history = {Path(p).name for p in s3(s3_endpoint).find(
        f"{BUCKET}/two/{EXPORTS}/history/customers")}
    assert history == {f"run_id={one['run_id']}.parquet", f"run_id={two['run_id']}.parquet"}
    assert (tmp_path / "b" / EXPORTS / "history" / "customers"
            / f"run_id={one['run_id']}.parquet").is_file()  # fetched from A's publication


def forked_sync(src: Path, out: Path, overrides: dict[str, Any], **env: str) -> int:
    """A sync in a forked child (the flow's plain steps); its exit code, or minus the
    signal that killed it."""
    preload()  # else each child imports Great Expectations again
    pid = os.fork()
    if pid == 0:  # never returns into pytest
        code = 1
        try:
            os.environ.update(env)
            from magsync.flows.settings import load_settings
            from magsync.flows.sync import run_sync

            run_sync(load_settings(source={"input": str(src)}, output_dir=str(out),
                                   **overrides), orchestrated=False)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def test_run_killed_before_publishing_is_published_by_the_rerun(s3_endpoint: str,
                                                               tmp_path: Path) -> None:
    """Killed after its commit, before its publication: the bucket keeps the previous
    publication whole, and the rerun (nothing left to write) publishes the run's exports."""
    from magsync.flows.crash import CRASH_ENV

    out, edited = tmp_path / "a", edited_sample(tmp_path / "src")
    with fresh_database("postgresql") as db:
        overrides = {"target": {"url": db}, "remote": remote(s3_endpoint, "three")}
        assert forked_sync(SAMPLE, out, overrides) == 0
        assert forked_sync(edited, out, overrides, **{CRASH_ENV: "publish"}) == -9
        assert last_name(pd.read_parquet(out / EXPORTS / "customers.parquet")) == "Smyth"
        assert last_name(read_exports(s3_endpoint, "three", "customers")) == "Smith"
        state, report = sync(edited, out, **overrides)
    assert state.is_completed(), state.message
    assert report["counts"]["customer"].get("updated", 0) == 0
    assert last_name(read_exports(s3_endpoint, "three", "customers")) == "Smyth"


def test_sqlite_target_with_a_remote_output_is_refused(tmp_path: Path) -> None:
    """Its run lock is a file on one machine: nothing keeps another machine's run of the
    store from publishing meanwhile. Refused before anything is opened or fetched."""
    state, report = sync(SAMPLE, tmp_path / "out",
                         remote={"url": f"s3://{BUCKET}/refused",
                                 "endpoint_url": "http://127.0.0.1:9"})
    assert state.is_failed() and report["exit_code"] == 2
    assert "SQLite target's run lock is a file on one machine" in str(state.message)
    assert not (tmp_path / "out" / "magsync.sqlite").exists()


@pytest.mark.parametrize(("pool", "refused"), [
    (None, False), (("one-at-a-time", 1), False), (("wide", 4), True), (("open", None), True)])
def test_sqlite_target_on_a_work_pool_needs_one_run_at_a_time(
        tmp_path: Path, pool: tuple[str, int | None] | None, refused: bool) -> None:
    from magsync.flows.settings import load_settings
    from magsync.flows.sync_steps import check_single_writer
    from magsync.transform.errors import ConfigError

    settings = load_settings(output_dir=str(tmp_path))
    if not refused:
        check_single_writer(settings, lambda: pool)
        return
    with pytest.raises(ConfigError, match=f"work pool '{pool[0]}' allows"):  # type: ignore[index]
        check_single_writer(settings, lambda: pool)


def test_output_dir_url_is_the_remote_with_a_local_working_copy() -> None:
    from magsync.flows.remote_settings import REMOTE_COPIES
    from magsync.flows.settings import load_settings

    settings = load_settings(output_dir="s3://bucket/some/prefix/")
    assert settings.remote.url == "s3://bucket/some/prefix"
    assert settings.output_dir == (REMOTE_COPIES / "s3/bucket/some/prefix").resolve()


def test_forget_reaches_the_published_exports(s3_endpoint: str, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`magsync forget` on another machine (an empty working copy) fetches the store's
    publication, erases the customer from it and publishes the result."""
    from magsync.flows.cli import main

    email = "sophie.smith1@example.com"
    with fresh_database("postgresql") as db:
        state, _ = sync(SAMPLE, tmp_path / "a", target={"url": db},
                        remote=remote(s3_endpoint, "forget"))
        assert state.is_completed(), state.message
        assert email in set(read_exports(s3_endpoint, "forget", "customers")["email"])
        monkeypatch.delenv("PREFECT_API_URL", raising=False)
        monkeypatch.setenv("MAGSYNC_REMOTE__ENDPOINT_URL", s3_endpoint)
        monkeypatch.setenv("MAGSYNC_REMOTE__LOCAL_DIR", str(tmp_path / "b"))
        code = main(["forget", "--email", email, "--website", "base", "--output-dir",
                     f"s3://{BUCKET}/forget", "--target", db, "--json"])
    assert code == 0
    assert (tmp_path / "b" / "s3" / BUCKET / "forget" / EXPORTS / "customers.parquet").is_file()
    assert email not in set(read_exports(s3_endpoint, "forget", "customers")["email"])
    history = s3(s3_endpoint).find(f"{BUCKET}/forget/{EXPORTS}/history/customers")
    options = storage_options(s3_endpoint)
    for path in history:
        assert email not in set(pd.read_parquet(f"s3://{path}", storage_options=options)
                                .get("email", pd.Series(dtype=str)))
