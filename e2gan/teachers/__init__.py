"""Teachers turn (image, instruction) into an edited image. The concepts that name the edits to
learn are ``e2gan.data.concepts``."""
from e2gan.teachers.base import Teacher
from e2gan.teachers.loading import load_teacher

__all__ = ["Teacher", "load_teacher"]
