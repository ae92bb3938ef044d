"""The errors the emulated store raises, shaped after Magento 1's API faults."""

from __future__ import annotations

# Magento's global faults (Mage/Api/etc/api.xml): name -> (code, message).
INTERNAL = ("1", "Internal Error. Please see log for details.")
ACCESS_DENIED = ("2", "Access denied.")
PATH_INVALID = ("3", "Invalid api path.")
SESSION_EXPIRED = ("5", "Session expired. Try to relogin.")
PARAM_MISSING = ("6", 'Required parameter is missing, for more details see "exception.log".')


class ApiFault(Exception):  # noqa: N818 (Magento calls them faults)
    """A Magento API fault: a numeric code and a message (faultcode, faultstring)."""

    def __init__(self, code: str, message: str, *, internal: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        # An 'internal' fault (code 1) carries the exception text in `call` but only the
        # stock message inside `multiCall` (Mage_Api_Model_Server_Handler_Abstract).
        self.internal = internal

    @classmethod
    def of(cls, fault: tuple[str, str]) -> ApiFault:
        """Build from one of the (code, message) constants above."""
        return cls(fault[0], fault[1])


class PhpError(Exception):
    """A PHP Error that escapes Magento's handler: a `SOAP-ENV:Server` fault, even in multiCall."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SaveError(Exception):
    """A Mage_Core_Exception thrown while saving (validation): the API layer picks the code."""


class CustomerNotFoundError(LookupError):
    """No customer with that id."""


class AddressNotFoundError(LookupError):
    """No address with that id."""
