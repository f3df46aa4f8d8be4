"""Loading a diffusers pipeline for the diffusion teacher: class by name, device, dtype, quiet
``from_pretrained`` with one-line errors, and the pipeline's native size and stride."""
from __future__ import annotations

from e2gan.errors import InputError
from e2gan.teachers.pretrained import how_to_provide

__all__ = ["diffusers_class", "load_pipeline", "pick_device", "pick_dtype", "native_resolution", "size_multiple",
           "jsonable"]


def diffusers_class(name: str, base: str, where: str, kind: str):
    import diffusers

    cls = getattr(diffusers, name, None)
    base_cls = getattr(diffusers, base)
    if not (isinstance(cls, type) and issubclass(cls, base_cls)):
        raise InputError(f"{kind} {name!r}", where, f"a diffusers {base} class name")
    return cls


def load_pipeline(cls, path: str, kwargs: dict, model: str, where: str):
    from diffusers.utils import logging as dlogging
    from transformers.utils import logging as tlogging

    was_enabled = dlogging.is_progress_bar_enabled(), tlogging.is_progress_bar_enabled()
    dlogging.disable_progress_bar()
    tlogging.disable_progress_bar()
    try:
        return cls.from_pretrained(path, **kwargs)
    except (OSError, ValueError, EnvironmentError, KeyError, TypeError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        hint = how_to_provide(model) if kwargs.get("local_files_only") is None else \
            "a complete pipeline folder (model_index.json and every component it lists)"
        raise InputError(f"model {model!r}", where, f"a loadable {cls.__name__} ({first}); {hint}") from None
    finally:
        if was_enabled[0]:
            dlogging.enable_progress_bar()
        if was_enabled[1]:
            tlogging.enable_progress_bar()


def pick_device(device: str, torch, where: str):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"teacher option device={device!r}", where,
                         "a device this machine has (no CUDA here): cpu or auto")
    return dev


def pick_dtype(dtype: str, device, torch, where: str):
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype == "float16" and device.type == "cpu":
        raise InputError("teacher option dtype='float16'", where,
                         "float32 or bfloat16 on the CPU (float16 is for CUDA)")
    return getattr(torch, dtype)


def native_resolution(pipe) -> int:
    vae_factor = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    unet = getattr(pipe, "unet", None)
    size = getattr(unet.config, "sample_size", None) if unet is not None else getattr(pipe, "default_sample_size", None)
    if isinstance(size, (list, tuple)):
        size = min(size)
    return int(size) * vae_factor if size else 512


def size_multiple(pipe) -> int:
    vae_factor = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    unet = getattr(pipe, "unet", None)
    if unet is not None:
        return vae_factor * 2 ** (len(unet.config.block_out_channels) - 1)
    return vae_factor * 2


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)
