"""`magsync verify`: re-read the target and compare it with the source, field by field
(load/verify.py)."""

from __future__ import annotations

from magsync.flows.migrate import open_source, open_target, store_maps
from magsync.flows.migrate_settings import MigrateSettings
from magsync.load.idmap import IdMap
from magsync.load.verify import Report, Verifier, VerifyResult, verify_batches

__all__ = ["Report", "VerifyResult", "run_verify"]


def run_verify(settings: MigrateSettings, report: Report | None = None) -> VerifyResult:
    """Reads source and target and compares them; `report` sees each difference."""
    source = open_source(settings)
    with open_target(settings.target) as target:
        scope = settings.options(target).scope
        idmap = IdMap(settings.state_file, scope, readonly=True)
        try:
            formats = [str(fmt) for _, fmt in getattr(source, "files", [])]
            verifier = Verifier(target, idmap, store_maps(settings, target.groups()),
                                settings.gender_labels, report or (lambda _d: None), formats)
            return verify_batches(verifier, source, idmap, settings.gender_labels)
        finally:
            idmap.close()
