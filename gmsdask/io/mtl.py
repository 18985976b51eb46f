"""Parsing Landsat metadata: MTL in ODL text (``_MTL.txt``, ``_ANG.txt``) or USGS XML (``_MTL.xml``)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from ..errors import MetadataError

__all__ = ["LandsatMetadata", "parse_odl", "parse_mtl_xml"]

_ASSIGNMENT = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=\s*(.*)$")


def _clean(value: str) -> str:
    value = value.strip()
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def parse_odl(text: str, source: str) -> dict[str, Any]:
    """Nested groups of an ODL document (``GROUP = X`` ... ``END_GROUP = X``); values stay strings,
    multi-line parenthesised tuples become lists of strings."""
    root: dict[str, Any] = {}
    stack: list[dict[str, Any]] = [root]
    names: list[str] = []
    pending_key, pending_value = None, ""
    for number, line in enumerate(text.splitlines(), start=1):
        if pending_key is not None:
            pending_value += " " + line.strip()
            if ")" in line:
                stack[-1][pending_key] = [_clean(v) for v in pending_value.strip("() ").split(",") if v.strip()]
                pending_key = None
            continue
        stripped = line.strip()
        if not stripped or stripped == "END":
            continue
        match = _ASSIGNMENT.match(line)
        if not match:
            raise MetadataError(source, f"line {number} is not ODL: {stripped[:80]!r}")
        key, value = match.group(1), match.group(2).strip()
        if key == "GROUP":
            group: dict[str, Any] = {}
            stack[-1][value] = group
            stack.append(group)
            names.append(value)
        elif key == "END_GROUP":
            if not names or names[-1] != value:
                raise MetadataError(source, f"line {number}: END_GROUP = {value} does not close "
                                            f"{names[-1] if names else 'any group'}")
            stack.pop()
            names.pop()
        elif value.startswith("(") and ")" not in value:
            pending_key, pending_value = key, value
        elif value.startswith("("):
            stack[-1][key] = [_clean(v) for v in value.strip("() ").split(",") if v.strip()]
        else:
            stack[-1][key] = _clean(value)
    if names or pending_key is not None:
        raise MetadataError(source, f"truncated: group {names[-1] if names else pending_key} is never closed")
    return root


def parse_mtl_xml(text: str, source: str) -> dict[str, Any]:
    """The USGS Collection 2 ``_MTL.xml`` as the same nested dict ``parse_odl`` gives for ``_MTL.txt``."""
    try:
        element = ET.fromstring(text)
    except ET.ParseError as err:
        raise MetadataError(source, f"not well-formed XML ({err})") from None

    def to_dict(node: ET.Element) -> dict[str, Any]:
        return {child.tag: (to_dict(child) if len(child) else (child.text or "").strip()) for child in node}

    return {element.tag: to_dict(element)}


@dataclass(frozen=True)
class LandsatMetadata:
    """A parsed MTL: lookups by key, optionally restricted to groups, with typed accessors."""

    tree: dict[str, Any]
    source: str

    def _groups(self) -> list[tuple[str, dict[str, Any]]]:
        found: list[tuple[str, dict[str, Any]]] = []

        def walk(name: str, node: dict[str, Any]) -> None:
            found.append((name, node))
            for key, value in node.items():
                if isinstance(value, dict):
                    walk(key, value)

        walk("", self.tree)
        return found

    def find(self, key: str, groups: tuple[str, ...] = ()) -> Any | None:
        """The value of ``key`` in the first of ``groups`` that has it (any group if none given)."""
        candidates = self._groups()
        if groups:
            by_name = dict(candidates)
            candidates = [(g, by_name[g]) for g in groups if g in by_name]
        for _, node in candidates:
            if key in node and not isinstance(node[key], dict):
                return node[key]
        return None

    def text(self, key: str, groups: tuple[str, ...] = ()) -> str:
        value = self.find(key, groups)
        if value is None:
            where = f" in {'/'.join(groups)}" if groups else ""
            raise MetadataError(self.source, f"required field {key}{where} is missing")
        return str(value)

    def number(self, key: str, groups: tuple[str, ...] = ()) -> float:
        value = self.text(key, groups)
        try:
            return float(value)
        except ValueError:
            raise MetadataError(self.source, f"field {key} = {value!r} is not a number") from None

    def numbers(self, key: str, groups: tuple[str, ...] = ()) -> list[float]:
        value = self.find(key, groups)
        if not isinstance(value, list):
            raise MetadataError(self.source, f"required list field {key} is missing")
        return [float(v) for v in value]
