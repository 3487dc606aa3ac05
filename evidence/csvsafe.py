"""CSV cells a spreadsheet reads as text, never as a formula (OWASP's CSV-injection rule). Plain Python.

Excel, LibreOffice and Google Sheets run a cell that begins with ``=``, ``+``, ``-`` or ``@`` as a formula
(``=HYPERLINK(…)``, ``+cmd|…``, ``=IMPORTXML(…)``), and a leading tab or carriage return can hide such a start.
Every CSV this project writes (a prompt set's export, ``python -m evidence export --format csv``) goes through
:func:`safe_cell`: a *text* cell starting with one of those characters gets a single quote in front, which the
spreadsheet shows as text. Numbers stay numbers (a score of ``-0.5`` is written as ``-0.5``); only strings change.

Example:
    >>> safe_cell("=HYPERLINK(\\"http://x\\")"), safe_cell("-2+3"), safe_cell(-0.5), safe_cell("a=b")
    ('\\'=HYPERLINK("http://x")', "'-2+3", -0.5, 'a=b')
"""

from __future__ import annotations

import csv
from typing import IO, Any, Iterable, Mapping, Sequence

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> Any:
    """``value`` with a ``'`` in front when it is a string a spreadsheet would read as a formula; else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_row(row: Iterable[Any]) -> list[Any]:
    """Every cell of ``row`` through :func:`safe_cell`."""
    return [safe_cell(value) for value in row]


class SafeWriter:
    """``csv.writer`` whose rows go through :func:`safe_row`.

    Args:
        handle: the text file (opened with ``newline=""``) or buffer written to.
        **options: ``csv.writer``'s options (``lineterminator``...).
    """

    def __init__(self, handle: IO[str], **options: Any) -> None:
        self._writer = csv.writer(handle, **options)
        # csv quotes a field holding a carriage return only when the line terminator has one: with "\n", a row
        # holding "\r" is written with its text cells quoted, or no reader can read the file back
        self._quoted = csv.writer(handle, **{**options, "quoting": csv.QUOTE_NONNUMERIC})
        self._bare_cr = "\r" not in options.get("lineterminator", "\r\n")

    def writerow(self, row: Iterable[Any]) -> None:
        cells = safe_row(row)
        carriage_return = self._bare_cr and any(isinstance(cell, str) and "\r" in cell for cell in cells)
        (self._quoted if carriage_return else self._writer).writerow(cells)

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class SafeDictWriter(csv.DictWriter):
    """``csv.DictWriter`` whose values (and header) go through :func:`safe_cell`."""

    def __init__(self, handle: IO[str], fieldnames: Sequence[str], **options: Any) -> None:
        super().__init__(handle, fieldnames=fieldnames, **options)

    def writeheader(self) -> Any:
        return self.writer.writerow(safe_row(self.fieldnames))

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({key: safe_cell(value) for key, value in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for rowdict in rowdicts:
            self.writerow(rowdict)
