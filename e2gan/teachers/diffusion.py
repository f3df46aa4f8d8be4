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

import inspect
import warnings
from pathlib import Path

from PIL import Image

from e2gan.errors import InputError
from e2gan.stand_in import folder_note
from e2gan.data.concepts import check_teacher_settings
from e2gan.teachers.diffusion_pipeline import (diffusers_class, jsonable, load_pipeline, native_resolution, pick_device,
                                               pick_dtype, size_multiple)
from e2gan.teachers.diffusion_spec import CALL_ARGS, DEFAULT_PIPELINE, parse_spec
from e2gan.teachers.pretrained import fingerprint_folder, resolve_pretrained

__all__ = ["DiffusionTeacher", "load_diffusion_teacher"]

RESAMPLE = Image.Resampling.LANCZOS


def load_diffusion_teacher(spec: str) -> "DiffusionTeacher":
    """The teacher a ``diffusers:<model>[?key=value&...]`` spec names (options: this module's docstring)."""
    model, options = parse_spec(spec)
    return DiffusionTeacher(model, **options)


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
        cls = diffusers_class(pipeline, "DiffusionPipeline", where, "pipeline")
        params = inspect.signature(cls.__call__).parameters
        if not ({"prompt", "image"} <= set(params)):
            raise InputError(f"pipeline {pipeline!r}", where,
                             "an image-editing pipeline whose __call__ takes prompt and image "
                             "(e.g. StableDiffusionInstructPix2PixPipeline, StableDiffusionImg2ImgPipeline)")
        self._params = params
        self.device = pick_device(device, torch, where)
        self.dtype = pick_dtype(dtype, self.device, torch, where)
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
            diffusers_class(scheduler, "SchedulerMixin", where, "scheduler")

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
        self.pipe = load_pipeline(cls, path, kwargs, model, where)
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
        self.resolution = int(resolution) or native_resolution(self.pipe)
        self.multiple = size_multiple(self.pipe)
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
                          "config": jsonable(dict(self._scheduler_for(self.scheduler, where).config))},
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
            cls = diffusers_class(name, "SchedulerMixin", where, "scheduler")
            compatible = {c.__name__ for c in getattr(self._base_scheduler, "compatibles", [])}
            compatible.add(type(self._base_scheduler).__name__)
            if name not in compatible:
                raise InputError(f"scheduler {name!r}", where,
                                 f"one compatible with the model: {', '.join(sorted(compatible))}")
            self._schedulers[name] = cls.from_config(self._base_scheduler.config)
        return self._schedulers[name]
