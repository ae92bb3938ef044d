"""Magento SOAP protocol errors, grouped by what the caller should do about them.

- ``MagentoFatalError``: stop; retrying cannot help (denied, wrong path, wrong URL, a
  non-numeric SOAP fault, HTTP 4xx, XML with a DTD). ``MagentoAuthError`` for login.
- ``MagentoRetriableError``: a passing failure (connection, timeout, HTTP 5xx, empty or
  truncated body). The client already retried reads; writes are never retried blindly.
- ``MagentoSessionExpired``: fault 5 that survived the client's one re-login.
- ``MagentoCallFault``: one call failed on its own data (faults 100-103 and other
  per-resource codes). Raised by ``call`` and returned inline by ``multi_call``.

``fault_error`` maps a store fault to one of these; ``summarize_args`` describes call
arguments without personal values; ``translated`` turns these into the caller's own
exceptions (a source's, a target's), the one place that does. Messages are one line,
name the resource, and never carry the API key or a session id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any


class MagentoError(Exception):
    """Root of every error the Magento client raises on purpose."""

    def __init__(
        self, message: str, *, resource: str | None = None, code: int | str | None = None
    ) -> None:
        super().__init__(message)
        self.resource = resource
        self.code = code


class MagentoFatalError(MagentoError):
    """The store refused for good (denied, invalid path, bad URL, protocol error)."""


class MagentoAuthError(MagentoFatalError):
    """Login refused: wrong API user or key (or basic auth in front of the store)."""


class MagentoSessionExpired(MagentoError):  # noqa: N818 (name fixed by the brief)
    """The session expired again right after a re-login (fault 5)."""


class MagentoRetriableError(MagentoError):
    """A passing failure: connection, timeout, HTTP 5xx, empty or truncated response."""


class MagentoCallFault(MagentoError):  # noqa: N818 (a fault, returned as data too)
    """A per-call fault: the call failed on its own (e.g. 102 "Customer not exists.").

    ``code`` is an int for numeric faults; ``args_summary`` describes the arguments
    without their values where those could be personal (dicts show keys only).
    """

    code: int | str

    def __init__(self, code: int | str, message: str, *, resource: str, args_summary: str) -> None:
        self.fault_message = message
        self.args_summary = args_summary
        one_line = "; ".join(part.strip() for part in message.splitlines() if part.strip())
        super().__init__(
            f"{resource}({args_summary}) failed with fault {code}: {one_line}",
            resource=resource,
            code=code,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MagentoCallFault):
            return NotImplemented
        return (self.code, self.fault_message, self.resource, self.args_summary) == (
            other.code,
            other.fault_message,
            other.resource,
            other.args_summary,
        )

    def __hash__(self) -> int:
        return hash((self.code, self.fault_message, self.resource))

    def __repr__(self) -> str:
        return (
            f"MagentoCallFault(code={self.code!r}, message={self.fault_message!r}, "
            f"resource={self.resource!r}, args_summary={self.args_summary!r})"
        )


FATAL_FAULTS = {
    2: "access denied: give the API user's role this resource",
    3: "invalid API path: the store has no such resource",
    4: "resource path is not callable",
}
SESSION_EXPIRED = 5


def fault_error(
    code: int | str,
    message: str,
    *,
    resource: str,
    args_summary: str,
    login_user: str | None = None,
) -> MagentoError:
    """The exception a store fault amounts to; ``login_user`` is set for login's faults.

    5 -> MagentoSessionExpired; 2 on login -> MagentoAuthError; 2, 3, 4 and non-numeric
    codes (``SOAP-ENV:Server``) -> MagentoFatalError; other numeric codes (100-103, and
    the global 0, 1, 6) -> MagentoCallFault, for the caller to judge per resource.
    """
    one_line = " ".join(message.split())
    if code == SESSION_EXPIRED:
        return MagentoSessionExpired(
            f"{resource}: session expired (fault 5)", resource=resource, code=5
        )
    if login_user is not None and code == 2:
        return MagentoAuthError(
            f"login refused for API user {login_user!r} (fault 2 {one_line}): "
            "check the API user and key",
            resource=resource,
            code=2,
        )
    hint = FATAL_FAULTS.get(code) if isinstance(code, int) else None
    if hint is not None:
        return MagentoFatalError(
            f"{resource}: {hint} (fault {code} {one_line})", resource=resource, code=code
        )
    if isinstance(code, str):
        return MagentoFatalError(
            f"{resource}: the store answered SOAP fault {code}: {one_line}",
            resource=resource,
            code=code,
        )
    return MagentoCallFault(code, message, resource=resource, args_summary=args_summary)


def summarize_args(args: Sequence[Any] | None) -> str:
    """Describe call arguments for messages: dicts by their keys, lists by their length."""
    if args is None:
        return ""
    out = []
    for value in args:
        if isinstance(value, dict):
            out.append("{" + ", ".join(str(key) for key in value) + "}")
        elif isinstance(value, list | tuple):
            out.append(f"[{len(value)} items]")
        else:
            out.append(repr(value if not isinstance(value, str) else value[:40]))
    return ", ".join(out)


def _passes_through(_fault: MagentoCallFault) -> Exception | None:
    return None


@dataclass(frozen=True)
class Translation:
    """What each group of client errors becomes for one caller (each takes a message)."""

    config: Callable[[str], Exception]  # login refused: fix the settings
    fatal: Callable[[str], Exception]  # refused for good
    retriable: Callable[[str], Exception]  # passing failures, retries exhausted
    prefix: str = ""  # names the side in every message, e.g. "target: "
    retriable_note: str = ""  # appended to a passing failure's message
    # A per-call fault's exception; None lets the fault pass through as data.
    call_fault: Callable[[MagentoCallFault], Exception | None] = _passes_through


@contextmanager
def translated(to: Translation) -> Iterator[None]:
    """Client errors as the caller's exceptions, by what the caller should do (one line
    each): auth -> config, passing failures -> retriable, the rest -> fatal."""
    try:
        yield
    except MagentoAuthError as err:
        raise to.config(f"{to.prefix}{err}") from err
    except MagentoCallFault as err:
        mapped = to.call_fault(err)
        if mapped is None:
            raise
        raise mapped from err
    except (MagentoRetriableError, MagentoSessionExpired) as err:
        raise to.retriable(f"{to.prefix}{err}{to.retriable_note}") from err
    except MagentoError as err:  # MagentoFatalError and anything else the client raises
        raise to.fatal(f"{to.prefix}{err}") from err
