"""Benchmark hook: what ``DiffusionTeacher.edit`` adds over calling its pipeline directly."""
from __future__ import annotations

import statistics
import time
from pathlib import Path

from PIL import Image

from e2gan.teachers.diffusion import DiffusionTeacher

__all__ = ["wrapper_overhead"]


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
