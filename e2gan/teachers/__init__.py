"""Teachers turn (image, instruction) into an edited image; concepts name the edits to learn."""
from e2gan.teachers.base import (
    KINDS,
    ROLES,
    Concept,
    Teacher,
    check_concept_name,
    load_concepts,
    select_concepts,
)
from e2gan.teachers.loading import load_teacher

__all__ = ["KINDS", "ROLES", "Concept", "Teacher", "check_concept_name", "load_concepts", "load_teacher",
           "select_concepts"]
