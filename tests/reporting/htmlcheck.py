"""Parse a report with the standard library's HTML parser and list what a reader needs:
images, every referencing attribute, anchors and ids, and each section's text."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from html.parser import HTMLParser

_REF_ATTRS = {"href", "src", "srcset", "action", "poster", "data", "xlink:href", "formaction"}


@dataclass
class Parsed:
    images: list[str] = field(default_factory=list)
    refs: list[tuple[str, str, str]] = field(default_factory=list)  # (tag, attribute, value)
    ids: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)
    section_text: dict[str, str] = field(default_factory=dict)
    section_images: dict[str, int] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """External references, non-embedded images and anchors that lead nowhere."""
        found = []
        for tag, attr, value in self.refs:
            if value.startswith("#"):
                if value[1:] not in self.ids:
                    found.append(f"<{tag} {attr}={value!r}> points to no id")
            elif not value.startswith("data:"):
                found.append(f"<{tag} {attr}={value!r}> is an external reference")
        for src in self.images:
            if not src.startswith("data:image/png;base64,"):
                found.append(f"image {src[:40]!r} is not embedded")
            elif not base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG"):
                found.append("an embedded image is not a PNG")
        if {"script", "link", "iframe", "object", "embed"} & self.tags:
            found.append(f"active or linked content: {sorted({'script', 'link', 'iframe'} & self.tags)}")
        return found


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out = Parsed()
        self._section: str | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.tags.add(tag)
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.out.ids.add(values["id"])
        if tag == "section":
            self._section = values.get("id", "").removeprefix("section-")
            self.out.section_text.setdefault(self._section, "")
            self.out.section_images.setdefault(self._section, 0)
        if tag == "img":
            self.out.images.append(values.get("src", ""))
            if self._section is not None:
                self.out.section_images[self._section] += 1
        for key, value in values.items():
            if key in _REF_ATTRS:
                self.out.refs.append((tag, key, value))
        if "style" in values and "url(" in values["style"]:
            self.out.refs.append((tag, "style", values["style"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None

    def handle_data(self, data: str) -> None:
        if self._section is not None:
            self.out.section_text[self._section] += data + " "


def parse(document: str) -> Parsed:
    parser = _Parser()
    parser.feed(document)
    parser.close()
    # CSS may reference files too (url(...), @import); the report's CSS must not.
    style = document.split("<style>", 1)[1].split("</style>", 1)[0] if "<style>" in document else ""
    if "url(" in style or "@import" in style:
        parser.out.refs.append(("style", "css", "url() or @import in the stylesheet"))
    return parser.out
