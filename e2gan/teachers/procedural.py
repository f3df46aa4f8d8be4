"""The procedural teacher: deterministic, named image edits in numpy/PIL.

A real teacher behind the same interface as the diffusion one, fast enough (a few ms per
image at 64²–256²) that the whole suite runs offline. Every edit is a pure function of
(image, seed). Only ``sketch`` uses the seed (faint paper grain); all others ignore it.
Blur and edge scales are relative to the image size, so an edit looks alike at 64² and 256².

``affects(image, instruction)`` is False for colour-only edits (hue rotations, greyscale,
colour-swap) on greyscale images, where they would return the input unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

from e2gan import __version__
from e2gan.errors import InputError
from e2gan.data.sources import is_greyscale

# Bump when any edit's output changes, so old distilled data is not mistaken for current.
REVISION = 1

Array = np.ndarray  # float32, H×W×3, values in [0, 1]


# ---------- helpers ----------

def _lum(a: Array) -> Array:
    return a @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _scale(a: Array) -> float:
    """Pixels per 1/64 of the short side: 1 at 64², 4 at 256²."""
    return min(a.shape[:2]) / 64.0


def _blur(x: Array, sigma: float) -> Array:
    s = (sigma, sigma, 0) if x.ndim == 3 else sigma
    return ndimage.gaussian_filter(x, s, mode="reflect")


def _grad_mag(g: Array) -> Array:
    return np.hypot(ndimage.sobel(g, 0, mode="reflect"), ndimage.sobel(g, 1, mode="reflect")) / 4.0


def rgb_to_hsv(a: Array) -> Array:
    r, g, b = a[..., 0], a[..., 1], a[..., 2]
    mx, mn = a.max(-1), a.min(-1)
    d = mx - mn
    safe = np.where(d > 0, d, 1.0)
    h = np.where(mx == r, ((g - b) / safe) % 6.0, np.where(mx == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    h = np.where(d > 0, h / 6.0, 0.0)
    s = np.where(mx > 0, d / np.where(mx > 0, mx, 1.0), 0.0)
    return np.stack([h, s, mx], -1).astype(np.float32)


def hsv_to_rgb(hsv: Array) -> Array:
    h, s, v = hsv[..., 0] % 1.0, hsv[..., 1], hsv[..., 2]
    i = np.floor(h * 6.0).astype(np.int32) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    choices = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    out = np.zeros(hsv.shape, dtype=np.float32)
    for k, (r, g, b) in enumerate(choices):
        m = i == k
        out[m] = np.stack([r[m], g[m], b[m]], -1)
    return out


# ---------- edits: Array in, Array out (clipping happens once, at the end) ----------

def hue(degrees: float) -> Callable[[Array, int], Array]:
    def edit(a: Array, seed: int) -> Array:
        hsv = rgb_to_hsv(a)
        hsv[..., 0] = (hsv[..., 0] + degrees / 360.0) % 1.0
        return hsv_to_rgb(hsv)
    return edit


def warm(a: Array, seed: int) -> Array:
    return a * np.array([1.12, 1.02, 0.80], np.float32) + np.array([0.04, 0.015, 0.0], np.float32)


def sepia(a: Array, seed: int) -> Array:
    m = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
    return a @ m.T


def high_contrast(a: Array, seed: int) -> Array:
    gain = 8.0
    lo, hi = 1 / (1 + np.exp(gain / 2)), 1 / (1 + np.exp(-gain / 2))
    return (1 / (1 + np.exp(-gain * (a - 0.5))) - lo) / (hi - lo)  # S-curve, ends fixed


def posterize(a: Array, seed: int) -> Array:
    return np.round(a * 3.0) / 3.0


def greyscale(a: Array, seed: int) -> Array:
    return np.repeat(_lum(a)[..., None], 3, -1)


def auto_levels(a: Array, seed: int) -> Array:
    """Stretch the 1st..99th luminance percentiles to black..white (needs global context)."""
    lo, hi = np.percentile(_lum(a), [1, 99])
    return (a - lo) / max(hi - lo, 0.1)  # gain capped so a flat image is not blown into noise


def pixelate(a: Array, seed: int) -> Array:
    h, w = a.shape[:2]
    block = max(2, round(4 * _scale(a)))
    img = Image.fromarray(_to_u8(a))
    small = img.resize((max(1, -(-w // block)), max(1, -(-h // block))), Image.Resampling.BOX)
    return np.asarray(small.resize((w, h), Image.Resampling.NEAREST), np.float32) / 255.0


def emboss(a: Array, seed: int) -> Array:
    lum = _blur(_lum(a), 0.5 * _scale(a))
    relief = 0.5 + 2.5 * (np.roll(lum, (-1, -1), (0, 1)) - np.roll(lum, (1, 1), (0, 1)))
    relief = _fix_border(relief)
    return relief[..., None] + 0.35 * (a - _lum(a)[..., None])  # metal relief with a hint of colour


def _fix_border(x: Array) -> Array:
    x = x.copy()  # np.roll wraps around: replace the wrapped rim with its neighbours
    x[0], x[-1], x[:, 0], x[:, -1] = x[1], x[-2], x[:, 1], x[:, -2]
    return x


def sketch(a: Array, seed: int) -> Array:
    """Pencil sketch (colour dodge of grey by its blurred negative) with seeded paper grain."""
    lum = _lum(a)
    blurred = _blur(1.0 - lum, 1.5 * _scale(a))
    dodge = np.clip(lum / np.maximum(1.0 - blurred, 1e-3), 0, 1)
    grain = np.random.default_rng(seed).normal(0.0, 0.012, lum.shape).astype(np.float32)
    return np.repeat((dodge ** 1.6 + grain)[..., None], 3, -1)


def cartoon(a: Array, seed: int) -> Array:
    smooth = ndimage.median_filter(a, size=(3, 3, 1), mode="reflect")
    flat = np.round(smooth * 4.0) / 4.0
    edges = _grad_mag(_blur(_lum(a), 0.6 * _scale(a))) * _scale(a)
    ink = np.clip((edges - 0.25) / 0.15, 0, 1)[..., None]
    return flat * (1 - ink)


def neon_edges(a: Array, seed: int) -> Array:
    blurred = _blur(a, 0.5 * _scale(a))
    mag = np.stack([_grad_mag(blurred[..., c]) for c in range(3)], -1).max(-1) * _scale(a)
    hsv = rgb_to_hsv(a)
    hsv[..., 1], hsv[..., 2] = 0.85, 1.0  # each edge glows in its own (saturated) colour
    colour = hsv_to_rgb(hsv)
    lines = colour * np.clip((mag - 0.1) / 0.3, 0, 1)[..., None]
    return lines + 0.8 * _blur(lines, 1.5 * _scale(a))


def mirror(a: Array, seed: int) -> Array:
    w = a.shape[1]
    out = a.copy()
    out[:, w - w // 2 :] = a[:, : w // 2][:, ::-1]
    return out


def _radius(a: Array) -> Array:
    h, w = a.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.hypot((x - (w - 1) / 2) / (w / 2), (y - (h - 1) / 2) / (h / 2)) / np.sqrt(2)


def vignette(a: Array, seed: int) -> Array:
    return a * (1.0 - 0.85 * _radius(a) ** 2)[..., None]


def sunset(a: Array, seed: int) -> Array:
    """Orange sky glow at the top fading to a purple dusk at the bottom."""
    t = np.linspace(0.0, 1.0, a.shape[0], dtype=np.float32)[:, None, None]
    top, bottom = np.array([1.25, 0.85, 0.55], np.float32), np.array([0.65, 0.45, 0.85], np.float32)
    return a * (top * (1 - t) + bottom * t)


def colour_swap(a: Array, seed: int) -> Array:
    """Find the image's dominant hue and swap it for its complement (global context)."""
    hsv = rgb_to_hsv(a)
    weight = hsv[..., 1] * hsv[..., 2]
    hist = np.bincount((hsv[..., 0] * 12).astype(np.int64).ravel() % 12, weight.ravel(), minlength=12)
    if hist.sum() < 1e-6:
        return a
    centre = (np.argmax(hist) + 0.5) / 12.0
    dist = np.abs((hsv[..., 0] - centre + 0.5) % 1.0 - 0.5)
    mask = np.clip(1.0 - dist / (45 / 360), 0, 1) * np.clip((hsv[..., 1] - 0.1) / 0.15, 0, 1)
    hsv[..., 0] = (hsv[..., 0] + 0.5 * mask) % 1.0
    return hsv_to_rgb(hsv)


def invert_highlights(a: Array, seed: int) -> Array:
    """Invert the brightest fifth of the image (threshold from the image's own histogram)."""
    lum = _lum(a)
    threshold = np.percentile(lum, 80)
    mask = np.clip((lum - threshold) / 0.04 + 0.5, 0, 1)[..., None]
    return a * (1 - mask) + (1.0 - a) * mask


def cartoon_hue(a: Array, seed: int) -> Array:
    return cartoon(hue(120)(a, seed), seed)


def _to_u8(a: Array) -> np.ndarray:
    return np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)


# ---------- registry ----------

@dataclass(frozen=True)
class Edit:
    name: str
    fn: Callable[[Array, int], Array]
    instruction: str
    colour_only: bool = False  # returns a greyscale image unchanged
    uses_seed: bool = False


EDITS: dict[str, Edit] = {e.name: e for e in [
    Edit("hue-60", hue(60), "shift every colour's hue by 60 degrees", colour_only=True),
    Edit("hue-120", hue(120), "shift every colour's hue by 120 degrees", colour_only=True),
    Edit("hue-180", hue(180), "shift every colour's hue by 180 degrees", colour_only=True),
    Edit("warm", warm, "give it a warm golden tone"),
    Edit("sepia", sepia, "make it look like an old sepia photograph"),
    Edit("high-contrast", high_contrast, "boost the contrast dramatically"),
    Edit("posterize", posterize, "posterize it into a few flat colour levels"),
    Edit("greyscale", greyscale, "make it black and white", colour_only=True),
    Edit("auto-levels", auto_levels, "auto-level it so the tones span the full range"),
    Edit("pixelate", pixelate, "pixelate it into big square blocks"),
    Edit("emboss", emboss, "emboss it like a metal relief"),
    Edit("sketch", sketch, "turn it into a pencil sketch", uses_seed=True),
    Edit("cartoon", cartoon, "make it look like a cartoon with bold outlines"),
    Edit("neon-edges", neon_edges, "make the edges glow like neon on black"),
    Edit("mirror", mirror, "mirror the left half onto the right half"),
    Edit("vignette", vignette, "add a dark vignette around the edges"),
    Edit("sunset", sunset, "bathe it in sunset light, orange above and purple below"),
    Edit("colour-swap", colour_swap, "swap the main colour for its complement", colour_only=True),
    Edit("invert-highlights", invert_highlights, "invert the brightest parts of the image"),
    Edit("cartoon-hue", cartoon_hue, "make it a cartoon with bold outlines and shift its hues by 120 degrees"),
]}


def _normalise(text: str) -> str:
    return " ".join(text.lower().split()).rstrip(".!")


_LOOKUP = {_normalise(k): e for e in EDITS.values() for k in (e.name, e.instruction)}


class ProceduralTeacher:
    name = "procedural"

    def resolve(self, instruction: str) -> Edit:
        """An edit by its name or by its instruction text (case and spacing ignored)."""
        edit = _LOOKUP.get(_normalise(instruction)) if isinstance(instruction, str) else None
        if edit is None:
            raise InputError(f"instruction {instruction!r}", "procedural teacher",
                             f"an edit name or its instruction; edits: {', '.join(sorted(EDITS))}")
        return edit

    def describe(self) -> dict:
        return {"name": self.name, "version": __version__, "revision": REVISION, "edits": sorted(EDITS)}

    def affects(self, image: Image.Image, instruction: str) -> bool:
        """False where the edit would return the image unchanged (colour edit on a grey image)."""
        return not (self.resolve(instruction).colour_only and is_greyscale(image))

    def edit(self, images: list[Image.Image], instruction: str, seeds: list[int]) -> list[Image.Image]:
        edit = self.resolve(instruction)
        if len(seeds) != len(images):
            raise InputError(f"{len(seeds)} seeds for {len(images)} images", "procedural teacher", "one seed per image")
        out = []
        for img, seed in zip(images, seeds):
            a = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
            out.append(Image.fromarray(_to_u8(edit.fn(a, int(seed))), "RGB"))
        return out
