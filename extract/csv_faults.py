"""Which entity a faulted row of the CE one-file export belongs to.

The record reader faults a record it cannot read (bytes that do not decode, a wrong field
count, a quote never closed) before anything knows whether the row was a customer or a
further address of the customer above. Counted as customers, the address rows of a
Windows-1252 file read as UTF-8 swell the customer faults past the customers in the file;
so the faulted rows are read again as plain text, forward only and only when there are
faults, and a row whose customer columns are all blank counts as an address fault.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from typing import BinaryIO

from magsync.extract.csv_open import Opener
from magsync.transform.faults import Fault
from magsync.transform.schema import ADDRESS


class RowPeek:
    """Reads single rows of a file again by their physical start line."""

    def __init__(self, opener: Opener, delimiter: str, customer_columns: list[int],
                 address_columns: list[int]) -> None:
        self.opener = opener
        self.delimiter = delimiter
        self.columns = customer_columns  # header positions of the customer columns
        self.address_columns = address_columns
        self.fh: BinaryIO | None = None
        self.next_line = 1  # the physical line the stream's next readline returns

    def attribute(self, faults: list[Fault]) -> tuple[list[Fault], list[Fault]]:
        """The faults split into customer faults and address faults: a row whose customer
        columns are all blank is an address fault (re-labelled); a customer row that also
        carries an address (its first one, as the export writes it) is both, so that
        address is counted as faulted rather than lost without a word."""
        customers: list[Fault] = []
        addresses: list[Fault] = []
        for fault in faults:
            fields = self._fields(fault.source_line) if fault.source_line else None
            if fields is not None and not self._filled(fields, self.columns):
                addresses.append(replace(fault, entity=ADDRESS.name))
                continue
            customers.append(fault)
            if fields is not None and self._filled(fields, self.address_columns):
                addresses.append(replace(
                    fault, entity=ADDRESS.name,
                    message=f"{fault.message} (the address on the customer's row)"))
        return customers, addresses

    @staticmethod
    def _filled(fields: list[str], positions: list[int]) -> bool:
        return any(fields[i].strip() for i in positions if i < len(fields))

    def _fields(self, line: int) -> list[str] | None:
        if self.fh is None or line < self.next_line:
            self.close()
            self.fh = self.opener()
            self.fh.readline()  # the header
            self.next_line = 2
        while self.next_line < line:
            if not self.fh.readline():
                return None
            self.next_line += 1
        raw = self.fh.readline()
        self.next_line += 1
        text = raw.decode("utf-8", errors="replace")
        try:
            return next(csv.reader([text], delimiter=self.delimiter), None)
        except csv.Error:  # e.g. a quote never closed on this line
            return None

    def close(self) -> None:
        """Closes the file, if open."""
        if self.fh is not None:
            self.fh.close()
            self.fh = None
