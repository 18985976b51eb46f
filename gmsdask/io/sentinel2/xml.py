"""XML metadata documents of a Sentinel-2 product (namespaces stripped, only what is read)."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from dataclasses import dataclass

#: Band names in ESA's bandId order (the index is the ``bandId``/``band_id`` of the metadata).
ESA_BAND_ORDER: tuple[str, ...] = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A",
                                   "B09", "B10", "B11", "B12")



from ...errors import MetadataError
from ..archive import ProductFiles


@dataclass(frozen=True)
class XmlDoc:
    """A parsed metadata document (namespaces stripped from tag names) and its name for error messages."""

    root: ET.Element
    name: str

    def first(self, tag: str, within: str | None = None) -> ET.Element | None:
        """The first element ``tag`` anywhere (or inside the first ``within`` element)."""
        scope = self.root if within is None else self.first(within)
        return None if scope is None else next(scope.iter(tag), None)

    def optional_text(self, tag: str, within: str | None = None) -> str | None:
        element = self.first(tag, within)
        text = (element.text or "").strip() if element is not None else ""
        return text or None

    def text(self, tag: str, within: str | None = None) -> str:
        """The text of ``tag``; a ``MetadataError`` naming the file when it is missing or empty."""
        text = self.optional_text(tag, within)
        if text is None:
            raise MetadataError(self.name, f"has no {tag}" + (f" in {within}" if within else ""))
        return text

    def number(self, tag: str, within: str | None = None) -> float:
        text = self.text(tag, within)
        try:
            return float(text)
        except ValueError:
            raise MetadataError(self.name, f"{tag} {text!r} is not a number") from None

    def optional_number(self, tag: str) -> float | None:
        return self.number(tag) if self.optional_text(tag) is not None else None

    def per_band(self, tag: str) -> dict[str, float]:
        """``{band name: value}`` of every ``tag`` element with a ``bandId``/``band_id`` attribute."""
        values = {}
        for element in self.root.iter(tag):
            band_id = element.get("bandId", element.get("band_id"))
            try:
                values[ESA_BAND_ORDER[int(band_id)]] = float((element.text or "").strip())
            except (TypeError, ValueError, IndexError):
                raise MetadataError(self.name, f"{tag} bandId={band_id!r} value={element.text!r} is invalid") \
                    from None
        return values


def _strip_namespaces(root: ET.Element) -> ET.Element:
    # ESA qualifies only the top-level sections (n1:General_Info ...); local names make lookups uniform.
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]
    return root


def read_xml(files: ProductFiles, member: str) -> XmlDoc:
    """A whole XML member; unreadable or malformed XML raises ``MetadataError`` naming the member."""
    name = files.describe(member)
    try:
        root = ET.fromstring(files.read_bytes(member))
    except ET.ParseError as err:
        raise MetadataError(name, f"is not well-formed XML ({err})") from None
    return XmlDoc(_strip_namespaces(root), name)


def read_xml_head(files: ProductFiles, member: str, last_tag: str) -> XmlDoc:
    """An XML member parsed only up to the end of its first ``last_tag`` element.

    The AWS datastrip metadata is ~13 MB of ancillary data; its radiometric info ends within the first 1 %.
    """
    name = files.describe(member)
    root: ET.Element | None = None
    try:
        for event, element in ET.iterparse(io.BytesIO(files.read_bytes(member)), events=("start", "end")):
            root = element if root is None else root
            if event == "end" and element.tag.rsplit("}", 1)[-1] == last_tag:
                break
    except ET.ParseError as err:
        raise MetadataError(name, f"is not well-formed XML ({err})") from None
    if root is None:
        raise MetadataError(name, "is empty")
    return XmlDoc(_strip_namespaces(root), name)
