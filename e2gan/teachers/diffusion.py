"""The diffusion teacher: a diffusers image-editing pipeline behind the ``Teacher`` interface.

Spec (``load_teacher`` / ``data.teacher`` / ``--teacher``)::

    diffusers:<model>[?key=value&key=value...]

``<model>`` is a hub id (``timbrooks/instruct-pix2pix``) or a local pipeline folder (one that
holds ``model_index.json``, e.g. made by ``save_pretrained`` or ``hf download <id> --local-dir
<folder>``). Options (URL-query syntax; ``+`` or ``%20`` for spaces):

    pipeline              diffusers class name (default StableDiffusionInstructPix2PixPipeline;
                          e.g. StableDiffusionImg2ImgPipeline for prompt + strength editing)
    scheduler             scheduler class name (default: the model's own)
    steps                 denoising steps (default: the pipeline's own default)
    guidance_scale        text guidance (default: the pipeline's)
    image_guidance_scale  image guidance, InstructPix2Pix-style pipelines (default: the pipeline's)
    strength              img2img-style pipelines (default: the pipeline's)
    negative_prompt       default negative prompt ('' = none)
    resolution            working size of the short side in pixels (default: the model's native
                          size, 512 for Stable Diffusion 1.x); images are resized to it and back
    device                auto | cpu | cuda | cuda:N (auto: cuda when available)
    dtype                 auto | float32 | float16 | bfloat16 (auto: float16 on cuda, float32 on cpu)
    revision, variant     passed to from_pretrained (hub revision, e.g. variant=fp16 weights)
    safety_checker        on | off (default on: whatever the model ships); flagged images warn
    max_batch             images per pipeline call (default 0: the whole batch distill passes)

Per-concept settings (``[concepts.<name>.teacher]`` in a concepts file: steps, guidance_scale,
image_guidance_scale, strength, negative_prompt, scheduler) override the defaults for that
concept; distillation passes them as ``edit(..., settings=...)`` and records them per pair.

Seeds: every image gets its own ``torch.Generator('cpu').manual_seed(seed)``, so an image's
result does not depend on the other images in its batch (up to float rounding) nor on the
device's random number generator. Offline (``HF_HUB_OFFLINE=1``) nothing touches the network: a
hub id is looked up in the local cache only, and a missing model is one ``InputError`` that says
how to provide a local folder.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import re
import statistics
import time
import warnings
from pathlib import Path
from urllib.parse import parse_qsl

from PIL import Image

from e2gan.errors import InputError
from e2gan.stand_in import folder_note
from e2gan.teachers.base import TEACHER_SETTINGS, check_teacher_settings

DEFAULT_PIPELINE = "StableDiffusionInstructPix2PixPipeline"
OPTION_KEYS = ("pipeline", "scheduler", "steps", "guidance_scale", "image_guidance_scale", "strength",
               "negative_prompt", "resolution", "device", "dtype", "revision", "variant", "safety_checker",
               "max_batch")
# Teacher setting -> the pipeline __call__ argument it sets.
CALL_ARGS = {"steps": "num_inference_steps", "guidance_scale": "guidance_scale",
             "image_guidance_scale": "image_guidance_scale", "strength": "strength",
             "negative_prompt": "negative_prompt"}
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
RESAMPLE = Image.Resampling.LANCZOS
FINGERPRINT_BYTES = 1 << 20
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".msgpack", ".onnx", ".gguf")

log = logging.getLogger(__name__)


# ---------- where the weights are ----------

def hub_offline() -> bool:
    """True when HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE is set (now, or when huggingface_hub was imported)."""
    def true(name: str) -> bool:
        return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")

    if true("HF_HUB_OFFLINE") or true("TRANSFORMERS_OFFLINE"):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover - huggingface_hub comes with diffusers/transformers
        return False
    return bool(constants.HF_HUB_OFFLINE)


def how_to_provide(model: str) -> str:
    return (f"download it where there is network with `hf download {model} --local-dir <folder>` "
            f"(or `huggingface-cli download {model} --local-dir <folder>`), copy the folder here and "
            "name the folder instead of the hub id")


def resolve_pretrained(model: str, *, revision: str | None, markers: tuple[str, ...], where: str,
                       what: str = "model") -> tuple[str, dict]:
    """Where to load ``model`` from, without touching the network unless online and not cached.

    Returns (path or hub id for from_pretrained, provenance: source, revision, folder).
    A local folder must hold one of ``markers``; a hub id is looked up in the local cache
    (the snapshot folder is loaded directly); offline and not cached -> InputError.
    """
    if not isinstance(model, str) or not model.strip():
        raise InputError(f"{what} {model!r}", where, "a hub id (owner/name) or a local folder")
    model = model.strip()
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not any((folder / m).is_file() for m in markers):
            raise InputError(f"folder {model!r}", where,
                             f"a folder holding {' or '.join(markers)} (made by save_pretrained or "
                             f"`hf download <id> --local-dir <folder>`)")
        return str(folder), {"source": "local folder", "revision": _local_revision(folder), "folder": folder}
    looks_like_path = (model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1
                       or folder.exists())
    if looks_like_path or not HUB_ID_RE.match(model):
        raise InputError(f"{what} folder {model!r}", where,
                         "an existing folder (none there) or a hub id like owner/name")
    from huggingface_hub import try_to_load_from_cache

    for marker in markers:
        try:
            hit = try_to_load_from_cache(model, marker, revision=revision)
        except Exception:  # invalid repo id / revision for the cache: treat as not cached
            hit = None
        if isinstance(hit, str):
            snap = Path(hit).parent
            return str(snap), {"source": "hub cache", "revision": snap.name, "folder": snap}
    if hub_offline():
        raise InputError(f"{what} {model!r}", where,
                         f"not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE=1): "
                         f"{how_to_provide(model)}")
    return model, {"source": "hub", "revision": revision or "main", "folder": None}


def _local_revision(folder: Path) -> str | None:
    """The commit a `hf download --local-dir` folder was fetched at, when its metadata says so."""
    meta = folder / ".cache" / "huggingface" / "download"
    for name in ("model_index.json.metadata", "config.json.metadata"):
        path = meta / name
        if path.is_file():
            lines = path.read_text("utf-8", errors="replace").splitlines()
            if lines and re.fullmatch(r"[0-9a-f]{40}", lines[0].strip()):
                return lines[0].strip()
    return None


def fingerprint_folder(folder: Path, variant: str | None = None) -> dict:
    """sha256 of every config/tokenizer file, and of (size + first and last MiB) of each weight file.

    Cheap (no full read of multi-GB weights) yet it tells fine-tunes of one architecture apart.
    Only what a pipeline loads counts, so two copies of one model fingerprint alike however much
    else was downloaded beside it: in a pipeline folder, ``model_index.json`` and the folders of
    the components it names; per folder, the weights of one format (safetensors if any, else
    the others) and of the requested ``variant`` (none: the files without one). Paths are
    relative, with '/'; hidden folders (.cache) are skipped.
    """
    folder = Path(folder)
    index = folder / "model_index.json"
    roots = [folder]
    if index.is_file():
        try:
            spec = json.loads(index.read_text("utf-8"))
        except (OSError, ValueError):
            spec = {}
        roots = [folder / k for k, v in spec.items()
                 if isinstance(v, list) and len(v) == 2 and v[0] is not None and (folder / k).is_dir()]
    files = [index] if index.is_file() else []
    for root in roots:
        found = [f for f in sorted(root.rglob("*")) if f.is_file()
                 and not any(part.startswith(".") for part in f.relative_to(folder).parts)]
        weights = [f for f in found if f.name.endswith(WEIGHT_SUFFIXES) and _variant_of(f.name) == variant]
        safetensors = [f for f in weights if f.name.endswith(".safetensors")]
        keep = set(safetensors or weights)
        files += [f for f in found if not f.name.endswith(WEIGHT_SUFFIXES) or f in keep]
    out: dict[str, str] = {}
    for path in files:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            if path.name.endswith(WEIGHT_SUFFIXES):
                size = path.stat().st_size
                h.update(str(size).encode())
                h.update(fh.read(FINGERPRINT_BYTES))
                if size > 2 * FINGERPRINT_BYTES:
                    fh.seek(-FINGERPRINT_BYTES, os.SEEK_END)
                h.update(fh.read(FINGERPRINT_BYTES))
            else:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        out[path.relative_to(folder).as_posix()] = h.hexdigest()
    return out


def _variant_of(name: str) -> str | None:
    """'diffusion_pytorch_model.fp16.safetensors' -> 'fp16'; shards ('-00001-of-00002') are not variants."""
    parts = name.split(".")
    if len(parts) < 3:
        return None
    middle = re.sub(r"-\d+-of-\d+$", "", parts[-2])
    return middle or None


# ---------- the spec ----------

def parse_spec(spec: str) -> tuple[str, dict]:
    """``diffusers:<model>[?k=v&...]`` -> (model, options as typed values)."""
    if not isinstance(spec, str) or not spec.startswith("diffusers:"):
        raise InputError(f"teacher {spec!r}", "teacher", "'diffusers:<model id or folder>[?key=value&...]'")
    body = spec[len("diffusers:"):].strip()
    model, _, query = body.partition("?")
    if not model.strip():
        raise InputError(f"teacher {spec!r}", "teacher", "a model after 'diffusers:' (hub id or local folder)")
    options: dict = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise InputError(f"teacher options {query!r}", f"teacher {spec!r}", "key=value pairs joined by '&'") from None
    for key, value in pairs:
        if key not in OPTION_KEYS:
            raise InputError(f"teacher option {key!r}", f"teacher {spec!r}", f"one of {', '.join(OPTION_KEYS)}")
        if key in options:
            raise InputError(f"teacher option {key!r}", f"teacher {spec!r}", "each option at most once")
        options[key] = _typed(key, value, spec)
    return model.strip(), options


def _typed(key: str, value: str, spec: str):
    where = f"teacher {spec!r}"
    try:
        if key in ("steps", "resolution", "max_batch"):
            v = int(value)
            if v < (1 if key == "steps" else 0):
                raise ValueError
            return v
        if key in ("guidance_scale", "image_guidance_scale", "strength"):
            v = float(value)
            check_teacher_settings({key: v}, f"option {key}", where)
            return v
    except ValueError:
        expected = "an integer >= 1" if key == "steps" else (
            "an integer >= 0 (0: default)" if key in ("resolution", "max_batch") else TEACHER_SETTINGS[key])
        raise InputError(f"teacher option {key}={value!r}", where, expected) from None
    if key == "safety_checker":
        if value.lower() not in ("on", "off", "true", "false", "1", "0"):
            raise InputError(f"teacher option {key}={value!r}", where, "on or off")
        return value.lower() in ("on", "true", "1")
    if key == "dtype" and value not in ("auto", "float32", "float16", "bfloat16"):
        raise InputError(f"teacher option {key}={value!r}", where, "auto, float32, float16 or bfloat16")
    if key == "device" and not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps|xpu(:\d+)?", value):
        raise InputError(f"teacher option {key}={value!r}", where, "auto, cpu, cuda or cuda:N")
    if key in ("pipeline", "scheduler") and not value.isidentifier():
        raise InputError(f"teacher option {key}={value!r}", where, "a diffusers class name")
    return value


def load_diffusion_teacher(spec: str) -> "DiffusionTeacher":
    model, options = parse_spec(spec)
    return DiffusionTeacher(model, **options)


# ---------- the teacher ----------

def _diffusers_class(name: str, base: str, where: str, kind: str):
    import diffusers

    cls = getattr(diffusers, name, None)
    base_cls = getattr(diffusers, base)
    if not (isinstance(cls, type) and issubclass(cls, base_cls)):
        raise InputError(f"{kind} {name!r}", where, f"a diffusers {base} class name")
    return cls


class DiffusionTeacher:
    """An image-editing diffusers pipeline (InstructPix2Pix by default) as a teacher."""

    name = "diffusers"

    def __init__(self, model: str, *, pipeline: str = DEFAULT_PIPELINE, scheduler: str = "",
                 steps: int | None = None, guidance_scale: float | None = None,
                 image_guidance_scale: float | None = None, strength: float | None = None,
                 negative_prompt: str = "", resolution: int = 0, device: str = "auto", dtype: str = "auto",
                 revision: str = "", variant: str = "", safety_checker: bool = True, max_batch: int = 0):
        import diffusers
        import torch

        self.model = model
        where = f"teacher diffusers:{model}"
        cls = _diffusers_class(pipeline, "DiffusionPipeline", where, "pipeline")
        params = inspect.signature(cls.__call__).parameters
        if not ({"prompt", "image"} <= set(params)):
            raise InputError(f"pipeline {pipeline!r}", where,
                             "an image-editing pipeline whose __call__ takes prompt and image "
                             "(e.g. StableDiffusionInstructPix2PixPipeline, StableDiffusionImg2ImgPipeline)")
        self._params = params
        self.device = _pick_device(device, torch, where)
        self.dtype = _pick_dtype(dtype, self.device, torch, where)
        self.max_batch = int(max_batch)

        # Options are checked against the pipeline class before any weights are loaded.
        defaults = {k: params[arg].default for k, arg in CALL_ARGS.items()
                    if arg in params and params[arg].default is not inspect.Parameter.empty}
        given = {"steps": steps, "guidance_scale": guidance_scale, "image_guidance_scale": image_guidance_scale,
                 "strength": strength, "negative_prompt": negative_prompt or None}
        for k, v in given.items():
            if v is not None and CALL_ARGS[k] not in params:
                raise InputError(f"teacher option {k}", where,
                                 f"options {pipeline} takes: {', '.join(self._settable())}")
        merged = {**defaults, **{k: v for k, v in given.items() if v is not None}}
        self.settings = {k: v for k, v in merged.items() if k != "negative_prompt" and v is not None}
        if "steps" not in self.settings:
            raise InputError(f"pipeline {pipeline!r}", where, "a pipeline with a num_inference_steps argument")
        self.negative_prompt = negative_prompt
        if scheduler:
            _diffusers_class(scheduler, "SchedulerMixin", where, "scheduler")

        path, self.provenance = resolve_pretrained(model, revision=revision or None, markers=("model_index.json",),
                                                   where=where)
        kwargs: dict = {"dtype": self.dtype}
        if self.provenance["source"] == "hub":
            kwargs["revision"] = revision or None
        else:
            kwargs["local_files_only"] = True
        if variant:
            kwargs["variant"] = variant
        init_params = inspect.signature(cls.__init__).parameters
        if not safety_checker and "safety_checker" in init_params:
            kwargs.update(safety_checker=None, requires_safety_checker=False)
        self.pipe = _load_pipeline(cls, path, kwargs, model, where)
        if self.provenance["source"] == "hub":  # downloaded just now: fingerprint the cached snapshot
            try:
                _, self.provenance = resolve_pretrained(model, revision=revision or None,
                                                        markers=("model_index.json",), where=where)
            except InputError:
                pass
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)

        self._base_scheduler = self.pipe.scheduler
        self._schedulers = {type(self._base_scheduler).__name__: self._base_scheduler}
        self.scheduler = scheduler or type(self._base_scheduler).__name__
        self._scheduler_for(self.scheduler, where)  # validate now, not at the first edit

        self.safety_checker = getattr(self.pipe, "safety_checker", None) is not None
        self.resolution = int(resolution) or _native_resolution(self.pipe)
        self.multiple = _size_multiple(self.pipe)
        self.flagged = 0  # images the safety checker blacked out

        from e2gan import __version__
        import transformers

        folder = self.provenance["folder"]
        stand_in = folder_note(folder) if folder is not None else None
        self._description = {
            "name": self.name,
            # A local folder is named by its basename: shards on machines with other paths match.
            "model": Path(model).name if self.provenance["source"] == "local folder" else model,
            "model_source": self.provenance["source"],
            "revision": self.provenance["revision"],
            "files": fingerprint_folder(folder, variant or None) if folder is not None else {},
            "pipeline": pipeline,
            "scheduler": {"class": self.scheduler,
                          "config": _jsonable(dict(self._scheduler_for(self.scheduler, where).config))},
            "settings": {**self.settings, "negative_prompt": negative_prompt},
            "variant": variant or None,
            "safety_checker": self.safety_checker,
            "resolution": self.resolution,
            "size_multiple": self.multiple,
            "resample": "lanczos",
            "device": self.device.type,  # not the index: shards on cuda:0..7 are one teacher
            "dtype": str(self.dtype).removeprefix("torch."),
            "seeding": "torch.Generator('cpu').manual_seed(seed) per image",
            "versions": {"diffusers": diffusers.__version__, "torch": torch.__version__,
                         "transformers": transformers.__version__, "e2gan": __version__},
            # Random weights that say so (e2gan.stand_in): the targets they make are no teacher's edits.
            **({"stand_in": stand_in} if stand_in else {}),
        }

    @property
    def device_name(self) -> str:
        """The device in words, for cost records: 'cpu' or 'cuda:0 (NVIDIA H100 80GB HBM3)'."""
        if self.device.type == "cuda":
            import torch

            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
        return str(self.device)

    # -- Teacher interface --

    def describe(self) -> dict:
        return dict(self._description)

    def affects(self, image: Image.Image, instruction: str) -> bool:
        """A diffusion editor can change any image, greyscale ones included."""
        return True

    def edit(self, images: list[Image.Image], instruction: str, seeds: list[int],
             settings: dict | None = None) -> list[Image.Image]:
        if len(seeds) != len(images):
            raise InputError(f"{len(seeds)} seeds for {len(images)} images", "diffusion teacher", "one seed per image")
        call = self.call_settings(settings)
        work = [self.to_working_size(img) for img in images]
        groups: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(work):
            groups.setdefault(img.size, []).append(i)
        out: list[Image.Image | None] = [None] * len(images)
        step = self.max_batch or len(images)
        for idxs in groups.values():
            for k in range(0, len(idxs), step):
                chunk = idxs[k:k + step]
                edited = self.run_pipeline([work[i] for i in chunk], instruction, [seeds[i] for i in chunk], call)
                for i, img in zip(chunk, edited):
                    size = images[i].size
                    out[i] = img if img.size == size else img.resize(size, RESAMPLE)
        return out  # type: ignore[return-value]

    # -- pieces, public so benchmarks and tests can time and check them --

    def call_settings(self, settings: dict | None = None) -> dict:
        """Defaults merged with per-concept settings, validated against this pipeline."""
        merged = {**self.settings, "negative_prompt": self.negative_prompt, "scheduler": self.scheduler}
        if settings:
            where = f"teacher diffusers:{self.model}"
            settings = check_teacher_settings(dict(settings), "concept teacher settings", where)
            for k in settings:
                if k != "scheduler" and CALL_ARGS[k] not in self._params:
                    raise InputError(f"concept teacher setting {k!r}", where,
                                     f"settings {self._description['pipeline']} takes: {', '.join(self._settable())}")
            if "scheduler" in settings:
                self._scheduler_for(settings["scheduler"], where)
            merged.update(settings)
        return merged

    def to_working_size(self, image: Image.Image) -> Image.Image:
        """RGB, short side at the teacher's resolution, both sides multiples of the model's stride."""
        image = image.convert("RGB")
        size = self.working_size(image.size)
        return image if image.size == size else image.resize(size, RESAMPLE)

    def working_size(self, size: tuple[int, int]) -> tuple[int, int]:
        w, h = size
        scale = self.resolution / min(w, h)
        m = self.multiple
        return (max(m, round(w * scale / m) * m), max(m, round(h * scale / m) * m))

    def pipeline_kwargs(self, images: list[Image.Image], instruction: str, seeds: list[int], call: dict) -> dict:
        """The exact arguments of one pipeline call (the images are already at working size)."""
        import torch

        n = len(images)
        kwargs = {"prompt": [instruction] * n, "image": images,
                  "generator": [torch.Generator("cpu").manual_seed(int(s)) for s in seeds],
                  "output_type": "pil"}
        for key, arg in CALL_ARGS.items():
            value = call.get(key)
            if key == "negative_prompt":
                if value:
                    kwargs[arg] = [value] * n
            elif value is not None and arg in self._params:
                kwargs[arg] = value
        return kwargs

    def run_pipeline(self, images: list[Image.Image], instruction: str, seeds: list[int],
                     call: dict) -> list[Image.Image]:
        scheduler = self._scheduler_for(call["scheduler"], f"teacher diffusers:{self.model}")
        if self.pipe.scheduler is not scheduler:
            self.pipe.scheduler = scheduler
        result = self.pipe(**self.pipeline_kwargs(images, instruction, seeds, call))
        flags = getattr(result, "nsfw_content_detected", None)
        if flags and any(flags):
            n = sum(bool(f) for f in flags)
            self.flagged += n
            warnings.warn(f"the safety checker blacked out {n} of {len(flags)} images for {instruction!r}; "
                          "their targets are black (use safety_checker=off to keep the edits)", stacklevel=2)
        return [img if img.mode == "RGB" else img.convert("RGB") for img in result.images]

    # -- helpers --

    def _settable(self) -> list[str]:
        return [k for k, arg in CALL_ARGS.items() if arg in self._params] + ["scheduler"]

    def _scheduler_for(self, name: str, where: str):
        if name not in self._schedulers:
            cls = _diffusers_class(name, "SchedulerMixin", where, "scheduler")
            compatible = {c.__name__ for c in getattr(self._base_scheduler, "compatibles", [])}
            compatible.add(type(self._base_scheduler).__name__)
            if name not in compatible:
                raise InputError(f"scheduler {name!r}", where,
                                 f"one compatible with the model: {', '.join(sorted(compatible))}")
            self._schedulers[name] = cls.from_config(self._base_scheduler.config)
        return self._schedulers[name]


def _load_pipeline(cls, path: str, kwargs: dict, model: str, where: str):
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


def _pick_device(device: str, torch, where: str):
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"teacher option device={device!r}", where,
                         "a device this machine has (no CUDA here): cpu or auto")
    return dev


def _pick_dtype(dtype: str, device, torch, where: str):
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype == "float16" and device.type == "cpu":
        raise InputError("teacher option dtype='float16'", where,
                         "float32 or bfloat16 on the CPU (float16 is for CUDA)")
    return getattr(torch, dtype)


def _native_resolution(pipe) -> int:
    vae_factor = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    unet = getattr(pipe, "unet", None)
    size = getattr(unet.config, "sample_size", None) if unet is not None else getattr(pipe, "default_sample_size", None)
    if isinstance(size, (list, tuple)):
        size = min(size)
    return int(size) * vae_factor if size else 512


def _size_multiple(pipe) -> int:
    vae_factor = int(getattr(pipe, "vae_scale_factor", 8) or 8)
    unet = getattr(pipe, "unet", None)
    if unet is not None:
        return vae_factor * 2 ** (len(unet.config.block_out_channels) - 1)
    return vae_factor * 2


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items() if not str(k).startswith("_")}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


# ---------- benchmark hook ----------

def wrapper_overhead(pipeline_dir: str | Path, n_images: int = 8, *, steps: int = 2, repeats: int = 7,
                     warmup: int = 1, size: int | None = None, seed: int = 0,
                     instruction: str = "make it look like a watercolor", **options) -> dict:
    """Time ``DiffusionTeacher.edit`` against calling its pipeline directly on the same batch.

    Both get the same images, prompt, settings and per-image generators; the calls alternate
    (raw, wrapper, raw, ...) so drift on a busy machine hits both alike. ``size``: source image
    size (default: the teacher's working size, so no resizing happens and only the wrapper's
    own work is measured; another size adds the resize to and back). Returns medians, minimums,
    the overhead ``wrapper / raw - 1`` from both, and whether the outputs matched.
    """
    import numpy as np

    teacher = DiffusionTeacher(str(pipeline_dir), steps=steps, **options)
    side = size or teacher.resolution
    rng = np.random.default_rng(seed)
    images = [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), "RGB")
              for _ in range(n_images)]
    seeds = list(range(seed, seed + n_images))
    call = teacher.call_settings()
    working = [teacher.to_working_size(im) for im in images]

    def raw():
        teacher.pipe.scheduler = teacher._scheduler_for(call["scheduler"], "wrapper_overhead")
        return teacher.pipe(**teacher.pipeline_kwargs(working, instruction, seeds, call)).images

    def wrapped():
        return teacher.edit(images, instruction, seeds)

    for _ in range(warmup):
        raw(), wrapped()
    t_raw, t_wrap = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out_raw = raw()
        t_raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out_wrap = wrapped()
        t_wrap.append(time.perf_counter() - t0)
    same = size is None and all(np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b))
                                for a, b in zip(out_raw, out_wrap))
    med_raw, med_wrap = statistics.median(t_raw), statistics.median(t_wrap)
    return {"n_images": n_images, "steps": steps, "repeats": repeats, "source_size": side,
            "working_size": list(teacher.working_size((side, side))), "device": teacher.device.type,
            "pipeline": teacher.describe()["pipeline"],
            "raw_s": {"median": med_raw, "min": min(t_raw), "all": t_raw},
            "wrapper_s": {"median": med_wrap, "min": min(t_wrap), "all": t_wrap},
            "overhead_median": med_wrap / med_raw - 1, "overhead_min": min(t_wrap) / min(t_raw) - 1,
            "outputs_identical": same}
