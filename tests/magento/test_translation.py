"""One translation of client errors, read by each side: the source's and the target's."""

from __future__ import annotations

import pytest

from magsync.extract.soap_source import SOURCE_ERRORS
from magsync.load.magento_target import TARGET_ERRORS, TargetFatalError, TargetUnavailableError
from magsync.magento.errors import (
    MagentoAuthError,
    MagentoCallFault,
    MagentoFatalError,
    MagentoRetriableError,
    MagentoSessionExpired,
    Translation,
    translated,
)
from magsync.transform.errors import ConfigError, SourceFatalError, SourceRetriableError

LIST_FAULT = MagentoCallFault(101, "Invalid filter", resource="customer.list",
                              args_summary="{x}")
OTHER_FAULT = MagentoCallFault(102, "Customer not exists.", resource="customer.info",
                               args_summary="7")


@pytest.mark.parametrize(("to", "error", "expected", "message"), [
    (SOURCE_ERRORS, MagentoAuthError("login refused"), ConfigError, "login refused"),
    (TARGET_ERRORS, MagentoAuthError("login refused"), ConfigError, "target: login refused"),
    (SOURCE_ERRORS, MagentoRetriableError("timeout"), SourceRetriableError,
     "timeout (retries exhausted)"),
    (TARGET_ERRORS, MagentoSessionExpired("expired"), TargetUnavailableError,
     "target: expired"),
    (SOURCE_ERRORS, MagentoFatalError("denied"), SourceFatalError, "denied"),
    (TARGET_ERRORS, MagentoFatalError("denied"), TargetFatalError, "target: denied"),
    (SOURCE_ERRORS, LIST_FAULT, ConfigError, "(a filter this store does not accept)"),
    (SOURCE_ERRORS, OTHER_FAULT, SourceFatalError, "customer.info(7) failed with fault 102"),
])
def test_each_client_error_becomes_the_sides_own(to: Translation, error: Exception,
                                                 expected: type[Exception],
                                                 message: str) -> None:
    with pytest.raises(expected) as raised, translated(to):
        raise error
    assert message in str(raised.value) and raised.value.__cause__ is error


def test_a_call_fault_passes_through_to_the_target() -> None:
    with pytest.raises(MagentoCallFault) as raised, translated(TARGET_ERRORS):
        raise OTHER_FAULT
    assert raised.value is OTHER_FAULT


def test_other_errors_are_not_touched() -> None:
    with pytest.raises(KeyError), translated(SOURCE_ERRORS):
        raise KeyError("x")
