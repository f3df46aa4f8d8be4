"""The Teacher protocol: what edits images for distillation. Concepts (what it is asked to edit)
are ``e2gan.data.concepts``; loading a teacher from its spec is ``loading``."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from PIL import Image


@runtime_checkable
class Teacher(Protocol):
    name: str

    def describe(self) -> dict:
        """JSON-able full configuration, versions included; recorded with the data set."""
        ...

    def edit(self, images: list[Image.Image], instruction: str, seeds: list[int]) -> list[Image.Image]:
        """Edit each image (one seed per image); same-size RGB images out.

        A teacher that honours per-concept settings (``Concept.teacher_settings``) also takes a
        keyword ``settings: dict``; distillation passes it only for concepts that have some.
        """
        ...
