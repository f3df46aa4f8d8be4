"""Loading a teacher from its spec: procedural, a diffusers editor, or a plug-in."""
from __future__ import annotations

from e2gan.errors import InputError
from e2gan.teachers.base import Teacher

__all__ = ["load_teacher"]


def load_teacher(spec: str) -> Teacher:
    """``procedural`` | ``module:callable`` (plug-in) | ``diffusers:<model>[?key=value&...]``.

    ``<model>`` is a hub id (``timbrooks/instruct-pix2pix``) or a local pipeline folder; the
    options are documented in ``e2gan.teachers.diffusion``. The kinds are imported only when
    named, so loading the procedural teacher never imports diffusers.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(f"teacher {spec!r}", "teacher", "'procedural', 'diffusers:<model>' or 'module:callable'")
    spec = spec.strip()
    if spec == "procedural":
        from e2gan.teachers.procedural import ProceduralTeacher

        return ProceduralTeacher()
    if spec.startswith("diffusers:"):
        from e2gan.teachers.diffusion import load_diffusion_teacher

        return load_diffusion_teacher(spec)
    if ":" in spec:
        from e2gan.teachers.plugin import load_plugin

        return load_plugin(spec)
    raise InputError(f"teacher {spec!r}", "teacher", "'procedural', 'diffusers:<model>' or 'module:callable'")
