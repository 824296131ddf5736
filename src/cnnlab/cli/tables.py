"""Column options and the text of the commands' rich tables and lines."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported where a table is drawn, not at the parser's start-up
    from rich.text import Text


def column(text: bool) -> dict:
    """`Table.add_column` options: text (layer names) wraps whole instead of being cut
    ("net.convnext.enco…" was every row of a Hugging Face model at 80 columns), numbers
    align right."""
    return {"justify": "left", "overflow": "fold"} if text else {"justify": "right"}


def literal(*parts: object | tuple[object, str]) -> Text:
    """A table cell, title or console line holding the user's text (layer, module and class
    names, file paths, notes that quote them), printed as written: rich reads "[...]" in a
    str as markup, so a layer "k[/b]" raised MarkupError and a class "x[bold]y" printed as
    "xy". A part `(text, style)` is the command's own emphasis ("DEAD" in red); every other
    part is plain text, never markup."""
    from rich.text import Text

    return Text.assemble(*((str(p[0]), p[1]) if isinstance(p, tuple) else str(p) for p in parts))
