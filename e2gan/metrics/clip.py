"""CLIP score and CLIP directional similarity (as InstructPix2Pix reports them), local weights only.

Weights: a ``transformers`` ``CLIPModel`` folder (config.json, weights, tokenizer files; a
``preprocessor_config.json`` is optional) named by ``$E2GAN_CLIP``, else ``$E2GAN_WEIGHTS/clip``.
Nothing is ever downloaded (loaded with ``local_files_only=True``). No folder -> the metrics are
skipped and the protocol says ``clip: "absent (<where looked>)"``; that is not an error. A folder
that exists but does not load is an ``InputError``.

Definitions (InstructPix2Pix, ``metrics/clip_similarity.py``), on L2-normalised embeddings:
  clip_score        cos(E_img(output), E_txt(edited text)), mean over images. A plain cosine in
                    [-1, 1], *not* torchmetrics' max(100 cos, 0).
  clip_directional  cos(E_img(output) - E_img(source), E_txt(edited text) - E_txt(source text)),
                    mean over images. The edited text is the concept's instruction; the source
                    text is a neutral caption (``SOURCE_CAPTION``, the empty string). An output
                    whose embedding equals its source's (no edit at all) has no direction and
                    scores 0 for that image — what ip2p's ``F.cosine_similarity`` gives for a zero
                    vector — so an identity model scores 0, never NaN.
Images: uint8 [N,3,H,W], resized (bicubic, no crop, as ip2p does) to the model's image size and
normalised with the folder's image mean/std (OpenAI CLIP's when it has no preprocessor config).
"""
from __future__ import annotations

import hashlib
import json
import os
from functools import lru_cache
from pathlib import Path

import torch
from torch.nn import functional as F

from e2gan.errors import InputError

ENV = "E2GAN_CLIP"
SOURCE_CAPTION = ""  # the neutral caption of the unedited source
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
ZERO_DELTA = 1e-6  # an image-embedding change below this norm is "no change": directional 0
_CHUNK = 32


def candidates() -> list[tuple[str, Path]]:
    """(how it was named, folder) for every place a CLIP folder is looked for, in order."""
    out = []
    if os.environ.get(ENV):
        out.append((f"${ENV}", Path(os.environ[ENV]).expanduser()))
    if os.environ.get("E2GAN_WEIGHTS"):
        out.append(("$E2GAN_WEIGHTS/clip", Path(os.environ["E2GAN_WEIGHTS"]).expanduser() / "clip"))
    return out


def find_clip() -> tuple[Path | None, str]:
    """(folder, how it was found) or (None, 'absent (<where looked>)')."""
    looked = candidates()
    for how, folder in looked:
        if (folder / "config.json").is_file():
            return folder, how
    where = ", ".join(f"{how}={folder}" for how, folder in looked) or f"${ENV} and $E2GAN_WEIGHTS unset"
    return None, f"absent ({where})"


class ClipScorer:
    """A frozen local CLIPModel that scores outputs against texts."""

    def __init__(self, folder: str | Path, device: str | torch.device = "cpu", found_by: str = "argument"):
        from transformers import CLIPModel, CLIPTokenizer

        self.folder = Path(folder)
        try:
            self.model = CLIPModel.from_pretrained(str(self.folder), local_files_only=True)
            self.tokenizer = CLIPTokenizer.from_pretrained(str(self.folder), local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise InputError("unloadable CLIP model", str(self.folder),
                             f"a transformers CLIPModel folder with its tokenizer files ({first})") from None
        self.model.requires_grad_(False).eval().to(device)
        self.device = device
        self.found_by = found_by
        self.image_size = int(self.model.config.vision_config.image_size)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)
        self.mean, self.std = self._mean_std()

    def _mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        path = self.folder / "preprocessor_config.json"
        if path.is_file():
            try:
                spec = json.loads(path.read_text())
                return tuple(map(float, spec["image_mean"])), tuple(map(float, spec["image_std"]))
            except (OSError, ValueError, KeyError, TypeError):
                pass
        return OPENAI_MEAN, OPENAI_STD

    def describe(self) -> dict:
        from e2gan.teachers.pretrained import fingerprint_folder

        files = fingerprint_folder(self.folder)
        return {
            "model": str(getattr(self.model.config, "_name_or_path", "") or self.folder.name),
            "folder": str(self.folder), "found_by": self.found_by,
            "fingerprint": hashlib.sha256(repr(sorted(files.items())).encode()).hexdigest(),
            "image_size": self.image_size, "resize": "bicubic, no crop", "mean": list(self.mean), "std": list(self.std),
            "clip_score": "cos(E_img(output), E_txt(edited text)), L2-normalised embeddings, mean over images (not x100)",
            "clip_directional": "cos(E_img(output)-E_img(source), E_txt(edited text)-E_txt(source text)) "
                                "(InstructPix2Pix); an unchanged image scores 0",
        }

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N,3,H,W] -> L2-normalised image embeddings [N,D] (float32, CPU)."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"images of dtype {images.dtype} and shape {tuple(images.shape)}", "CLIP score",
                             "uint8 [N,3,H,W]")
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=self.device).view(1, 3, 1, 1)
        out = []
        for chunk in images.split(_CHUNK):
            x = chunk.to(self.device).float() / 255.0
            if x.shape[-2:] != (self.image_size, self.image_size):
                x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
            pooled = self.model.vision_model(pixel_values=(x - mean) / std).pooler_output
            out.append(F.normalize(self.model.visual_projection(pooled).float(), dim=-1).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """L2-normalised text embeddings [len(texts), D] (float32, CPU)."""
        batch = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt").to(self.device)
        pooled = self.model.text_model(input_ids=batch["input_ids"],
                                       attention_mask=batch["attention_mask"]).pooler_output
        return F.normalize(self.model.text_projection(pooled).float(), dim=-1).cpu()

    def score(self, outputs: torch.Tensor, sources: torch.Tensor, text: str,
              source_text: str = SOURCE_CAPTION) -> dict:
        """{'clip_score', 'clip_directional'} of paired outputs/sources for one edit text."""
        if outputs.shape != sources.shape or len(outputs) == 0:
            raise InputError(f"outputs {tuple(outputs.shape)} vs sources {tuple(sources.shape)}", "CLIP score",
                             "two non-empty uint8 image sets of one shape")
        out_e, src_e = self.encode_images(outputs), self.encode_images(sources)
        txt = self.encode_texts([text, source_text])
        return {"clip_score": float((out_e @ txt[0]).mean()),
                "clip_directional": float(directional(out_e, src_e, txt[0], txt[1], unchanged=_same(outputs, sources)).mean())}


def _same(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a == b).flatten(1).all(1)


def directional(out_e: torch.Tensor, src_e: torch.Tensor, text_e: torch.Tensor, source_text_e: torch.Tensor,
                unchanged: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image directional similarity [N]; 0 where the image (or the text) did not change."""
    d_img = out_e - src_e
    d_txt = (text_e - source_text_e).expand_as(d_img)
    cos = F.cosine_similarity(d_img, d_txt, dim=-1)
    still = d_img.norm(dim=-1) < ZERO_DELTA
    if unchanged is not None:
        still = still | unchanged.to(still.device)
    if float(d_txt[:1].norm()) < ZERO_DELTA:
        still = torch.ones_like(still)
    return torch.where(still, torch.zeros_like(cos), cos)


@lru_cache(maxsize=2)
def _scorer(folder: str, device: str, found_by: str) -> ClipScorer:
    return ClipScorer(folder, device=device, found_by=found_by)


def get_scorer(device: str | torch.device = "cpu") -> tuple[ClipScorer | None, str]:
    """(scorer, '') when a CLIP folder is found, else (None, 'absent (<where looked>)')."""
    folder, how = find_clip()
    if folder is None:
        return None, how
    return _scorer(str(folder), str(device), how), how
