"""USGS metadata text: the ODL of ``MTL.txt`` / ``ANG.txt`` and the XML of ``MTL.xml`` from one tree.

A tree is a list of ``(key, value)``; a value is a nested tree (a GROUP), a ``str`` (written quoted in ODL,
as USGS quotes strings) or a ``Raw`` (numbers, dates and tuples, written as given).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

__all__ = ["Raw", "Tree", "to_odl", "to_usgs_xml", "number"]


@dataclass(frozen=True)
class Raw:
    """A value written unquoted (``02``, ``2024-06-01``, ``1.2925E-02``, ``(1, 2)``)."""

    text: str


Tree = list[tuple[str, "Tree | str | Raw"]]


def number(value: float, fmt: str) -> Raw:
    return Raw(format(value, fmt))


def to_odl(tree: Tree, *, end: bool = True) -> str:
    """ODL text: ``GROUP = NAME`` blocks indented by two spaces per level, closed by ``END``."""
    lines: list[str] = []

    def emit(items: Tree, depth: int) -> None:
        pad = "  " * depth
        for key, value in items:
            if isinstance(value, list):
                lines.append(f"{pad}GROUP = {key}")
                emit(value, depth + 1)
                lines.append(f"{pad}END_GROUP = {key}")
            elif isinstance(value, Raw):
                lines.append(f"{pad}{key} = {value.text}")
            else:
                lines.append(f'{pad}{key} = "{value}"')

    emit(tree, 0)
    if end:
        lines.append("END")
    return "\n".join(lines) + "\n"


def to_usgs_xml(tree: Tree) -> str:
    """The XML form of an MTL (``MTL.xml``): elements named like the ODL keys, 2-space indentation."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>']

    def emit(items: Tree, depth: int) -> None:
        pad = "  " * depth
        for key, value in items:
            if isinstance(value, list):
                lines.append(f"{pad}<{key}>")
                emit(value, depth + 1)
                lines.append(f"{pad}</{key}>")
            else:
                text = value.text if isinstance(value, Raw) else value
                lines.append(f"{pad}<{key}>{escape(text)}</{key}>")

    emit(tree, 0)
    return "\n".join(lines) + "\n"
