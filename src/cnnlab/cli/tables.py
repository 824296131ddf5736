"""Column options shared by the commands' rich tables."""

from __future__ import annotations


def column(text: bool) -> dict:
    """`Table.add_column` options: text (layer names) wraps whole instead of being cut
    ("net.convnext.enco…" was every row of a Hugging Face model at 80 columns), numbers
    align right."""
    return {"justify": "left", "overflow": "fold"} if text else {"justify": "right"}
