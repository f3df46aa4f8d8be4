"""Image grids: rows of (source | teacher target | model output ...), with a labelled header."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from e2gan.io import atomic_write

HEADER_PX = 14


def grid_image(rows: torch.Tensor | np.ndarray, header: tuple[str, ...] = (), row_labels: tuple[str, ...] = (),
               pad: int = 2, label_px: int = 0) -> Image.Image:
    """``rows``: uint8 [N, K, 3, H, W] -> one RGB image, N rows of K tiles."""
    arr = rows.numpy() if isinstance(rows, torch.Tensor) else np.asarray(rows)
    n, k, _, h, w = arr.shape
    top = HEADER_PX if header else 0
    left = label_px if row_labels else 0
    canvas = Image.new("RGB", (left + k * (w + pad) + pad, top + n * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for j, name in enumerate(header):
        draw.text((left + pad + j * (w + pad), 1), str(name)[: max(1, w // 6)], fill="black")
    for i in range(n):
        if i < len(row_labels):
            draw.text((2, top + pad + i * (h + pad) + h // 2 - 5), str(row_labels[i])[: max(1, left // 6)], fill="black")
        for j in range(k):
            tile = Image.fromarray(np.transpose(arr[i, j], (1, 2, 0)))
            canvas.paste(tile, (left + pad + j * (w + pad), top + pad + i * (h + pad)))
    return canvas


def save_triplet_grid(rows: torch.Tensor | np.ndarray, path: str | Path, header: tuple[str, ...] = (),
                      row_labels: tuple[str, ...] = (), label_px: int = 0) -> Path:
    img = grid_image(rows, header, row_labels, label_px=label_px)
    return atomic_write(path, lambda p: img.save(p, format="PNG"))
