"""The fleet file: one clear error per mistake; a store's settings as its sync sees them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from magsync.flows.fleet_file import load_fleet, store_overrides
from magsync.flows.settings import load_settings
from magsync.load import layout
from magsync.transform.errors import ConfigError

TARGET = '[targets.dw]\nurl = "postgresql+psycopg://etl@db/dw"\nmax_writers = 3\n'
DE = ('[[stores]]\nname = "de"\ntarget = "dw"\nschedule = "30 2 * * *"\n'
      'full_schedule = "30 3 * * 0"\nwebsite_codes = {base = 1, de = 2}\n'
      '[stores.source]\nkind = "soap"\nurl = "https://de.example.com/"\napi_user = "etl"\n'
      'api_key_env = "DE_KEY"\n')
FR = ('[[stores]]\nname = "fr"\ntarget = "dw"\n[stores.source]\nkind = "csv"\n'
      'input = "exports/fr"\n')


def fleet_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "stores.toml"
    path.write_text(text)
    return path


def test_a_valid_fleet_gives_each_store_its_secret_free_settings(tmp_path: Path) -> None:
    fleet = load_fleet(fleet_file(tmp_path, 'output_dir = "out"\n' + TARGET + DE + FR))
    de = store_overrides(fleet, fleet.store("de"))
    assert de["limits"] == {"target": "magsync-target-dw",
                            "store": "magsync-store-de.example.com"}
    settings = load_settings(**de)
    assert settings.source.name == "de" and settings.source.api_key_env == "DE_KEY"
    assert settings.source.api_key is None and settings.website_codes == {"base": 1, "de": 2}
    assert settings.output_dir == tmp_path / "out"  # relative to the fleet file
    fr = load_settings(**store_overrides(fleet, fleet.store("fr")))
    assert fr.source.input == tmp_path / "exports" / "fr"
    assert fr.limits.store == "magsync-store-csv-fr"
    assert layout.exports_dir(fr.output_dir, "fr") == tmp_path / "out" / "exports" / "source=fr"


@pytest.mark.parametrize(("text", "message"), [
    (TARGET + DE + DE, "store 'de' is listed twice"),
    (TARGET + DE.replace('target = "dw"', 'target = "dw"\ncolour = "red"'),
     "stores.0.colour: Extra inputs are not permitted"),
    (TARGET + DE.replace('api_user = "etl"', 'api_user = "etl"\napi_key = "s3cret"'),
     "stores.0.source.api_key: Extra inputs are not permitted"),
    (TARGET + DE.replace("30 2 * * *", "30 25 * * *"),
     "stores.0.schedule: Value error, cron '30 25 * * *': bad hour field '25' (values 0-23)"),
    (TARGET + DE.replace("30 3 * * 0", "weekly"),
     "stores.0.full_schedule: Value error, cron 'weekly': five fields"),
    (TARGET + '[[stores]]\nname = "de"\ntarget = "dw"\n', "stores.0.source: Field required"),
    (TARGET + FR.replace('input = "exports/fr"\n', ""),
     "stores.0.source: Value error, a CSV source needs input"),
    (TARGET + DE.replace('api_key_env = "DE_KEY"\n', ""),
     "stores.0.source: Value error, a SOAP source needs api_key_env"),
    (TARGET + DE.replace('target = "dw"', 'target = "dwh"'),
     "store 'de': no target named 'dwh' (targets: dw)"),
    (TARGET + DE.replace('name = "de"', 'name = "../de"'), "store name '../de'"),
    (TARGET.replace("etl@db", "etl:pw@db") + DE,
     "targets.dw.url: Value error, no password in the fleet file"),
    ('[targets.dw]\nurl = "sqlite:///dw.sqlite"\nmax_writers = 2\n' + DE,
     "a SQLite target needs max_writers = 1: its run lock is a local file"),
    (TARGET, "stores: Field required"),
])
def test_each_mistake_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_fleet(fleet_file(tmp_path, text))
    assert message in str(err.value)
    assert str(err.value).startswith(f"fleet file {tmp_path / 'stores.toml'}: invalid setting")
    assert "(and " not in str(err.value), "one mistake, one error"


def test_an_unknown_store_names_the_known_ones(tmp_path: Path) -> None:
    fleet = load_fleet(fleet_file(tmp_path, TARGET + DE + FR))
    with pytest.raises(ConfigError, match=r"no store 'it' in the fleet file \(stores: de, fr\)"):
        fleet.store("it")


def test_a_sqlite_target_with_one_writer_is_accepted(tmp_path: Path) -> None:
    text = '[targets.dw]\nurl = "sqlite:///dw.sqlite"\nmax_writers = 1\n' + FR
    assert load_fleet(fleet_file(tmp_path, text)).targets["dw"].max_writers == 1


def test_sync_store_runs_one_store_of_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from magsync.flows.cli import EXIT_OK, main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)  # untracked: in-process
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "home"))
    sample = Path(__file__).resolve().parent.parent / "data" / "sample"
    text = ('output_dir = "out"\n[targets.local]\nurl = "sqlite:///' + str(tmp_path)
            + '/t.sqlite"\nmax_writers = 1\n' + FR.replace('"exports/fr"', f'"{sample}"')
            + FR.replace('"fr"', '"it"').replace('"exports/fr"', '"nowhere"')
            ).replace('"dw"', '"local"')
    code = main(["sync", "--store", "fr", "--fleet", str(fleet_file(tmp_path, text)),
                 "--json", "--quiet"])
    assert code == EXIT_OK, capsys.readouterr().err
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["source"] == "fr" and summary["counts"]["customer"]["created"] > 0
    assert (tmp_path / "out" / "exports" / "source=fr" / "customers.parquet").is_file()
    assert not (tmp_path / "out" / "exports" / "source=it").exists()
