"""Plug-in teachers: ``module:attr`` names a teacher object, a class, or a no-argument factory."""
from __future__ import annotations

import importlib

from e2gan.errors import InputError

_EXPECTED = "'module:attr' where attr is a teacher (name, describe(), edit()) or a class/factory that takes no arguments and returns one"


def _looks_like_teacher(obj: object) -> bool:
    return all(hasattr(obj, a) for a in ("name", "describe", "edit")) and not isinstance(obj, type)


def load_plugin(spec: str):
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise InputError(f"teacher {spec!r}", "teacher plug-in", _EXPECTED)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise InputError(f"teacher {spec!r}", "teacher plug-in", f"an importable module ({e})") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise InputError(f"teacher {spec!r}", "teacher plug-in", f"module {module_name!r} to define {attr!r}")
        obj = getattr(obj, part)
    # A class or factory is called once; an object that already is a teacher is used as is.
    if not _looks_like_teacher(obj) and callable(obj):
        try:
            obj = obj()
        except TypeError as e:
            raise InputError(f"teacher {spec!r}", "teacher plug-in", f"{_EXPECTED} ({e})") from None
    missing = [a for a in ("name", "describe", "edit") if not hasattr(obj, a)]
    if missing or not callable(obj.edit) or not callable(obj.describe) or not isinstance(obj.name, str):
        what = ", ".join(missing) if missing else "name must be a str, describe and edit callables"
        raise InputError(f"teacher {spec!r}", "teacher plug-in", f"{_EXPECTED}; missing or wrong: {what}")
    return obj
