"""The manifest a saved model folder carries, so that a task type can load any of its model
kinds back from the folder alone (``TaskType.load_model(path)``).

A task type declares one :class:`ModelManifest` (file name, format version, the kinds it
writes) and calls :meth:`ModelManifest.write` in ``Model.save`` and
:meth:`ModelManifest.read` in ``load_model``; a folder that is not one of its models, or was
written by a newer release of the plugin, fails with an error naming the file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlplug.errors import MlplugError


class ModelFormatError(MlplugError, ValueError):
    """A model folder is not one this task type wrote, or not in a format it reads."""


@dataclass(frozen=True)
class ModelManifest:
    #: Who writes these folders, for messages: "a churn model".
    owner: str
    #: The model kinds the task type saves (``"boosted"``, ``"baseline"``...).
    kinds: tuple[str, ...]
    file: str = "model.json"
    #: Raise it when the folder layout changes; folders of a newer format are refused.
    format_version: int = 1

    def write(self, path: Path, kind: str, **fields: Any) -> None:
        """Write the manifest of a ``kind`` model into the folder ``path``."""
        if kind not in self.kinds:
            raise ValueError(f"{self.owner}: unknown model kind {kind!r}; expected one of {self.kinds}")
        data = {"format_version": self.format_version, "kind": kind, **fields}
        (Path(path) / self.file).write_text(json.dumps(data, indent=2, sort_keys=True, default=str))

    def read(self, path: Path) -> dict[str, Any]:
        """The manifest of the folder ``path``, checked: its kind is one of ``kinds`` and its
        format is not newer than ``format_version``."""
        file = Path(path) / self.file
        if not file.is_file():
            raise ModelFormatError(f"{path}: not a saved {self.owner} (no {self.file})")
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as exc:
            raise ModelFormatError(f"{file}: unreadable: {exc}") from exc
        if not isinstance(data, dict):
            raise ModelFormatError(f"{file}: not a JSON object")
        version = data.get("format_version")
        if not isinstance(version, int) or version < 1:
            raise ModelFormatError(f"{file}: format_version {version!r} is not a positive integer")
        if version > self.format_version:
            raise ModelFormatError(
                f"{file}: written by a newer release (format {version}; this one reads up to "
                f"{self.format_version}); upgrade the plugin"
            )
        if data.get("kind") not in self.kinds:
            raise ModelFormatError(
                f"{file}: unknown model kind {data.get('kind')!r}; expected one of {self.kinds}"
            )
        return data
