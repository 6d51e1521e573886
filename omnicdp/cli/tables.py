"""Tables for people: what the CLI prints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text


def print_table(title: str, rows: Iterable[Sequence[object]],
                headers: Sequence[str] = ("", "")) -> None:
    # The title on a line of its own: as the table's title it wraps to the table's width.
    table = Table()
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console = Console()
    console.print(Text(title, style="bold"))
    console.print(table)
