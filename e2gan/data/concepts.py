"""Concepts: the named edits a generator learns, each an instruction with a role and a kind, read
from a concepts TOML file (packaged ones by name: ``procedural``, ``ffhq``, ``scenery``).

A concept may carry per-concept teacher settings; which of them a teacher honours is the
teacher's business (``e2gan.teachers``), but their names and ranges are part of the file format.
"""
from __future__ import annotations

import importlib.resources
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from e2gan.errors import InputError

ROLES = ("base", "new")
# What the edit does (colour..global) or how a held-out concept relates to the base ones.
KINDS = ("colour", "tone", "texture", "structure", "spatial", "global", "variant", "composition")
CONCEPT_KEYS = ("instruction", "role", "kind", "note", "related", "teacher")
# Optional per-concept teacher settings (``[concepts.<name>.teacher]``): the teacher's own
# defaults apply where a concept sets nothing. Which keys a teacher honours is its business; the
# diffusion teacher takes all of them (``strength`` only for img2img-style pipelines).
TEACHER_SETTINGS = {
    "steps": "a positive integer (denoising steps)",
    "guidance_scale": "a number >= 0 (text guidance)",
    "image_guidance_scale": "a number >= 0 (image guidance, InstructPix2Pix-style pipelines)",
    "strength": "a number in (0, 1] (img2img-style pipelines)",
    "negative_prompt": "a string",
    "scheduler": "a diffusers scheduler class name, e.g. EulerAncestralDiscreteScheduler",
}
# Concepts files shipped with the package, loadable by name: load_concepts("ffhq").
PACKAGED_CONCEPTS = {"procedural": "concepts.toml", "ffhq": "concepts_ffhq.toml",
                     "scenery": "concepts_scenery.toml"}
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # also a folder name: no dots, no slashes


@dataclass(frozen=True)
class Concept:
    name: str
    instruction: str
    role: str  # 'base' | 'new'
    kind: str  # one of KINDS
    note: str = ""
    related: tuple[str, ...] = ()  # base concepts a 'variant'/'composition' builds on
    teacher_settings: tuple[tuple[str, object], ...] = ()  # sorted (key, value) pairs; see TEACHER_SETTINGS

    @property
    def settings(self) -> dict:
        """The per-concept teacher settings as a dict (empty: the teacher's defaults)."""
        return dict(self.teacher_settings)


def check_concept_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise InputError(f"concept name {name!r}", where,
                         "lower-case letters, digits, '-' and '_', starting with a letter or digit")
    return name


def load_concepts(path: str | Path | None = None) -> list[Concept]:
    """Read a concepts TOML file (default: the packaged ``concepts.toml``).

    ``path`` may also name a packaged file: ``procedural`` (the default), ``ffhq`` or ``scenery``
    (the paper's concept names as InstructPix2Pix instructions), unless a file of that name exists.

    Format: one table per concept, ``[concepts.<name>]`` with ``instruction``, ``role``
    (base|new), ``kind`` and optional ``note``, ``related`` (list of base concept names) and
    ``teacher`` (a table of per-concept teacher settings, keys from ``TEACHER_SETTINGS``).
    """
    if path is None or (str(path) in PACKAGED_CONCEPTS and not Path(path).exists()):
        filename = PACKAGED_CONCEPTS[str(path or "procedural")]
        where = f"packaged {filename}"
        text = (importlib.resources.files("e2gan.data") / filename).read_text("utf-8")
    else:
        where = str(path)
        try:
            text = Path(path).read_text("utf-8")
        except OSError as e:
            raise InputError(where, "concepts file", f"a readable TOML file ({e.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(where, "concepts file", f"valid TOML ({e})") from None
    extra = set(data) - {"concepts"}
    if extra:
        raise InputError(f"key {sorted(extra)[0]!r}", where, "only a [concepts.<name>] table per concept")
    table = data.get("concepts")
    if not isinstance(table, dict) or not table:
        raise InputError("concepts", where, "at least one [concepts.<name>] table")
    concepts = [_parse_concept(name, body, where) for name, body in table.items()]
    names = {c.name for c in concepts}
    for c in concepts:
        for r in c.related:
            if r not in names:
                raise InputError(f"concepts.{c.name}.related {r!r}", where,
                                 f"names of concepts in this file: {', '.join(sorted(names))}")
    return concepts


def _parse_concept(name: str, body: object, where: str) -> Concept:
    check_concept_name(name, where)
    key = f"concepts.{name}"
    if not isinstance(body, dict):
        raise InputError(key, where, "a table with instruction, role and kind")
    for k in body:
        if k not in CONCEPT_KEYS:
            raise InputError(f"{key}.{k}", where, f"one of the keys {', '.join(CONCEPT_KEYS)}")
    for k in ("instruction", "role", "kind"):
        if k not in body:
            raise InputError(f"{key}.{k}", where, "a required key (missing)")
    for k in ("instruction", "role", "kind", "note"):
        if k in body and not isinstance(body[k], str):
            raise InputError(f"{key}.{k}", where, "a string")
    if not body["instruction"].strip():
        raise InputError(f"{key}.instruction", where, "a non-empty instruction")
    if body["role"] not in ROLES:
        raise InputError(f"{key}.role {body['role']!r}", where, f"one of {', '.join(ROLES)}")
    if body["kind"] not in KINDS:
        raise InputError(f"{key}.kind {body['kind']!r}", where, f"one of {', '.join(KINDS)}")
    related = body.get("related", [])
    if not isinstance(related, list) or not all(isinstance(r, str) for r in related):
        raise InputError(f"{key}.related", where, "a list of concept names")
    settings = _parse_settings(body.get("teacher", {}), f"{key}.teacher", where)
    return Concept(name, body["instruction"].strip(), body["role"], body["kind"],
                   body.get("note", ""), tuple(related), settings)


def check_teacher_settings(settings: object, key: str, where: str) -> dict:
    """Validate per-concept teacher settings (types and ranges); returns them as a dict."""
    if not isinstance(settings, dict):
        raise InputError(key, where, f"a table with keys among {', '.join(TEACHER_SETTINGS)}")
    for k, v in settings.items():
        if k not in TEACHER_SETTINGS:
            raise InputError(f"{key}.{k}", where, f"one of the keys {', '.join(TEACHER_SETTINGS)}")
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        ok = {"steps": isinstance(v, int) and not isinstance(v, bool) and v >= 1,
              "guidance_scale": number and v >= 0,
              "image_guidance_scale": number and v >= 0,
              "strength": number and 0 < v <= 1,
              "negative_prompt": isinstance(v, str),
              "scheduler": isinstance(v, str) and v.isidentifier()}[k]
        if not ok:
            raise InputError(f"{key}.{k} {v!r}", where, TEACHER_SETTINGS[k])
    return {k: (float(v) if k in ("guidance_scale", "image_guidance_scale", "strength") else v)
            for k, v in settings.items()}


def _parse_settings(settings: object, key: str, where: str) -> tuple[tuple[str, object], ...]:
    return tuple(sorted(check_teacher_settings(settings, key, where).items()))


def select_concepts(concepts: list[Concept], names_or_role: list[str] | str) -> list[Concept]:
    """``"base"``/``"new"``/``"all"`` pick by role; a name or list of names picks those, in order."""
    if isinstance(names_or_role, str):
        if names_or_role in ROLES:
            return [c for c in concepts if c.role == names_or_role]
        if names_or_role == "all":
            return list(concepts)
        names_or_role = [n.strip() for n in names_or_role.split(",") if n.strip()]
    by_name = {c.name: c for c in concepts}
    out = []
    for n in names_or_role:
        if n not in by_name:
            known = ", ".join(c.name for c in concepts)
            raise InputError(f"concept {n!r}", "concept selection", f"'base', 'new', 'all' or one of: {known}")
        if by_name[n] not in out:
            out.append(by_name[n])
    if not out:
        raise InputError("concept selection", "concept selection", "at least one concept")
    return out


def select_names_or_roles(concepts: list[Concept], items: list[str]) -> list[Concept]:
    """Each item is a concept name or a role ('base', 'new', 'all'); order kept, no repeats."""
    out = []
    for item in items:
        out += [c for c in select_concepts(concepts, item) if c not in out]
    return out


def concept_names(cfg) -> tuple[list[str], list[str]]:
    """(base concept names, new concept names) a config (``e2gan.config.Config``) names, read
    from its concepts file."""
    concepts = load_concepts(cfg.data.concepts_file or None)
    return ([c.name for c in select_names_or_roles(concepts, cfg.data.base_concepts)],
            [c.name for c in select_names_or_roles(concepts, cfg.data.new_concepts)])
