"""Images <-> sequences of patch vectors (one token per patch; patch_size 1: one per pixel).

Layout (ViT's, einops "c (h p1) (w p2) -> (h w) (p1 p2 c)"): patches in row-major order over
the image; inside a patch, rows, then columns, then channels. A 512 x 512 RGB image with 4 x 4
patches is (16384, 48); CIFAR-10 with patch 1 is (1024, 3): one RGB pixel per token.
"""

from __future__ import annotations

import torch


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(..., C, H, W) -> (..., (H / p) * (W / p), p * p * C)."""
    *lead, C, H, W = images.shape
    p = patch_size
    if p < 1 or H % p or W % p:
        raise ValueError(f"patch_size {p} must divide the image size {H} x {W}; choose an "
                         f"image_size that is a multiple of patch_size")
    x = images.reshape(*lead, C, H // p, p, W // p, p)  # (..., C, h, p1, w, p2)
    x = x.movedim(-5, -1)  # (..., h, p1, w, p2, C)
    x = x.transpose(-4, -3)  # (..., h, w, p1, p2, C)
    return x.reshape(*lead, (H // p) * (W // p), p * p * C)


def unpatchify(patches: torch.Tensor, patch_size: int, height: int, width: int) -> torch.Tensor:
    """(..., (H / p) * (W / p), p * p * C) -> (..., C, H, W); the inverse of patchify."""
    *lead, N, D = patches.shape
    p = patch_size
    h, w = height // p, width // p
    if h * w != N or D % (p * p) or h * p != height or w * p != width:
        raise ValueError(f"{N} patches of {D} values do not form a {height} x {width} image "
                         f"with patch_size {p}")
    C = D // (p * p)
    x = patches.reshape(*lead, h, w, p, p, C)  # (..., h, w, p1, p2, C)
    x = x.transpose(-4, -3)  # (..., h, p1, w, p2, C)
    x = x.movedim(-1, -5)  # (..., C, h, p1, w, p2)
    return x.reshape(*lead, C, height, width)
