"""A procedural Pathfinder-LIKE generator: NOT the released LRA Pathfinder images.

It follows the task's recipe (Linsley et al. 2018; LRA Pathfinder-32) so that the suite has an
offline, seeded stand-in: a 32 x 32 black canvas with two long "snake" curves made of short
dashes (bounded turn between dashes), a few short distractor snakes, and two endpoint dots.
Label 1: both dots sit on the two ends of the same long snake; label 0: one dot sits on an end
of each long snake. Both classes have the same number of snakes, dashes and dots, so the label
is only readable by following the curves. Curves never touch each other (one pixel of space),
so "connected" is unambiguous. Pixel values 0 / 255 are the tokens (vocab 256, 1024 tokens).

Numbers from this generator are NOT comparable to LRA Pathfinder results: its curve statistics
(dash shape, lengths, curvature, intensity) are not those of the released images. For those,
use race.data.pathfinder.PathfinderDataModule with the LRA release.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import cache_path, cached_payload
from .datamodule import SPLITS, TokenDataModule
from .ragged import FixedLengthTokenDataset

log = logging.getLogger(__name__)

INK = 255


@dataclass(frozen=True)
class PathfinderLikeSettings:
    image_size: int = 32
    contour_length: int = 8  # dashes in each of the two long snakes
    distractor_length: int = 3  # dashes in each distractor snake
    num_distractors: int = 2
    dash_length: float = 2.0  # pixels drawn per dash
    gap_length: float = 1.5  # pixels skipped between dashes
    max_turn_degrees: float = 35.0  # largest change of direction from one dash to the next
    dot_radius: int = 1  # endpoint dots are (2 r + 1)^2 squares

    def check(self) -> None:
        if self.image_size < 8 or self.contour_length < 1 or self.distractor_length < 1:
            raise ValueError(
                f"need image_size >= 8 and contour/distractor lengths >= 1; got {self}"
            )
        travel = self.contour_length * (self.dash_length + self.gap_length)
        if travel > 4 * self.image_size:
            raise ValueError(
                f"snakes of {self.contour_length} dashes travel {travel:.0f} px, too long for a "
                f"{self.image_size} px canvas; lower contour_length or dash/gap lengths"
            )


class _NoRoom(Exception):
    """A snake could not be placed without touching the others: start the image again."""


def _dilate(mask: np.ndarray) -> np.ndarray:
    """Mask grown by one pixel in the 8 directions (the no-touch zone around drawn pixels)."""
    grown = mask.copy()
    padded = np.pad(mask, 1)
    h, w = mask.shape
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            grown |= padded[dy : dy + h, dx : dx + w]
    return grown


def _dot_pixels(center: np.ndarray, radius: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel indices of the (2 r + 1)^2 square dot centred on ``center`` (y, x), clipped."""
    offsets = np.arange(-radius, radius + 1)
    ys = np.clip(center[0] + offsets, 0, size - 1)
    xs = np.clip(center[1] + offsets, 0, size - 1)
    return np.repeat(ys, len(xs)), np.tile(xs, len(ys))


def _draw_snake(
    rng: np.random.Generator,
    snake_ids: np.ndarray,
    snake_id: int,
    num_dashes: int,
    s: PathfinderLikeSettings,
    candidates: int = 64,
    rounds: int = 2,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one dashed snake into ``snake_ids`` (in place); return its two end pixels (y, x).

    Its pixels (and the dots that may sit on its ends) keep one pixel away from other snakes.
    Candidates are drawn in vectorised batches; the first one that fits is taken (the same
    distribution as trying them one by one).
    """
    size = s.image_size
    margin = s.dot_radius  # ends leave room for a dot inside the canvas
    keep_out = _dilate(snake_ids != 0)  # drawn pixels and reserved dot squares
    keep_out_for_dots = keep_out
    for _ in range(s.dot_radius):
        keep_out_for_dots = _dilate(keep_out_for_dots)
    samples = max(2, int(np.ceil(s.dash_length * 3)))  # sub-pixel steps along a dash
    along = np.linspace(0.0, s.dash_length, samples)  # (S,)
    T, K = candidates, num_dashes
    for _ in range(rounds):
        start = rng.uniform(margin, size - 1 - margin, size=(T, 1, 2))  # (T, 1, 2) as (y, x)
        turns = np.deg2rad(rng.uniform(-s.max_turn_degrees, s.max_turn_degrees, (T, K)))
        angles = rng.uniform(0, 2 * np.pi, (T, 1)) + np.cumsum(turns, 1)  # (T, K)
        direction = np.stack([np.sin(angles), np.cos(angles)], -1)  # (T, K, 2)
        steps = np.cumsum(direction * (s.dash_length + s.gap_length), 1)  # (T, K, 2)
        dash_starts = start + np.concatenate([np.zeros((T, 1, 2)), steps[:, :-1]], 1)
        points = dash_starts[:, :, None] + along[None, None, :, None] * direction[:, :, None]
        pixels = np.rint(points).astype(int).reshape(T, K * samples, 2)  # (T, P, 2)
        ends = pixels[:, [0, -1]]  # (T, 2, 2)
        fits = ((ends >= margin) & (ends <= size - 1 - margin)).all((1, 2))
        fits &= ((pixels >= 0) & (pixels <= size - 1)).all((1, 2))
        clipped = pixels.clip(0, size - 1)
        fits &= ~keep_out[clipped[..., 0], clipped[..., 1]].any(1)
        clipped_ends = clipped[:, [0, -1]]
        fits &= ~keep_out_for_dots[clipped_ends[..., 0], clipped_ends[..., 1]].any(1)
        if fits.any():
            chosen = int(np.argmax(fits))
            ys, xs = pixels[chosen, :, 0], pixels[chosen, :, 1]
            snake_ids[ys, xs] = snake_id
            for end in ends[chosen]:  # reserve the dot squares: later snakes keep clear of them
                dot = _dot_pixels(end, s.dot_radius, size)
                snake_ids[dot] = np.where(snake_ids[dot] == 0, -snake_id, snake_ids[dot])
            return ends[chosen, 0], ends[chosen, 1]
    raise _NoRoom


def draw_pathfinder_like(
    rng: np.random.Generator, label: int, s: PathfinderLikeSettings = PathfinderLikeSettings()
) -> np.ndarray:
    """One (image_size, image_size) uint8 image whose answer is ``label`` (1 = connected)."""
    for _ in range(1000):
        # > 0: pixels of snake k; < 0: reserved dot area of snake k (not drawn unless a dot)
        snake_ids = np.zeros((s.image_size, s.image_size), dtype=np.int8)
        try:
            ends_a = _draw_snake(rng, snake_ids, 1, s.contour_length, s)
            ends_b = _draw_snake(rng, snake_ids, 2, s.contour_length, s)
            for k in range(s.num_distractors):
                _draw_snake(rng, snake_ids, 3 + k, s.distractor_length, s)
        except _NoRoom:
            continue
        image = np.where(snake_ids > 0, INK, 0).astype(np.uint8)
        which_end_a, which_end_b = rng.integers(0, 2, size=2)
        if label == 1:
            dots = (ends_a[0], ends_a[1])
        else:
            dots = (ends_a[which_end_a], ends_b[which_end_b])
        for dot in dots:
            image[_dot_pixels(dot, s.dot_radius, s.image_size)] = INK
        return image
    raise ValueError(
        f"could not fit the snakes on the canvas in 1000 tries with {s}; lower num_distractors, "
        "contour_length or distractor_length, or raise image_size"
    )


def generate_pathfinder_like(
    num_samples: int, seed: int = 0, settings: PathfinderLikeSettings = PathfinderLikeSettings()
) -> tuple[torch.Tensor, torch.Tensor]:
    """(num_samples, image_size ** 2) uint8 pixel tokens and balanced-in-expectation 0/1 labels."""
    settings.check()
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, size=num_samples)
    size = settings.image_size
    images = np.zeros((num_samples, size, size), dtype=np.uint8)  # (N, H, W)
    for i, label in enumerate(labels):
        images[i] = draw_pathfinder_like(rng, int(label), settings)
    tokens = torch.from_numpy(images.reshape(num_samples, -1))  # (N, H * W), row-major
    return tokens, torch.from_numpy(labels).long()


class PathfinderLikeDataModule(TokenDataModule):
    """Generated Pathfinder-LIKE images (NOT the LRA release), cached under data_dir.

    Batches: {"input_ids" (B, image_size ** 2), "padding_mask" (all False), "labels" (B,)}.
    """

    num_classes = 2
    vocab_size = 256
    pad_id = 0  # unused: images fill seq_len

    def __init__(
        self,
        seq_len: int = 1024,
        image_size: int = 32,
        contour_length: int = 8,
        distractor_length: int = 3,
        num_distractors: int = 2,
        dash_length: float = 2.0,
        gap_length: float = 1.5,
        max_turn_degrees: float = 35.0,
        dot_radius: int = 1,
        num_train: int = 160_000,
        num_val: int = 20_000,
        num_test: int = 20_000,
        batch_size: int = 512,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | os.PathLike | None = None,
    ):
        super().__init__(batch_size, num_workers, seed, data_dir)
        if seq_len != image_size**2:
            raise ValueError(
                f"a {image_size} x {image_size} image is {image_size**2} pixel tokens; set "
                f"seq_len={image_size**2} (got {seq_len})"
            )
        self.seq_len = seq_len
        self.settings = PathfinderLikeSettings(
            image_size, contour_length, distractor_length, num_distractors,
            float(dash_length), float(gap_length), float(max_turn_degrees), dot_radius,
        )  # fmt: skip
        self.settings.check()
        self.sizes = {"train": num_train, "val": num_val, "test": num_test}
        if min(self.sizes.values()) < 0:
            raise ValueError("num_train, num_val and num_test must be >= 0")

    def _cache_settings(self) -> dict:
        return {"dataset": "pathfinder-like (generated, not the LRA release)",
                **asdict(self.settings), **self.sizes, "seed": self.seed}  # fmt: skip

    @property
    def cache_file(self):
        s, n = self.settings, self.sizes
        prefix = (
            f"pathfinder-like-generated_{s.image_size}px_contour{s.contour_length}"
            f"_n{n['train']}-{n['val']}-{n['test']}_seed{self.seed}"
        )
        return cache_path(self.data_dir, prefix, self._cache_settings())

    def _build(self) -> dict:
        log.warning(
            "generating Pathfinder-LIKE images (a procedural stand-in, NOT the LRA Pathfinder "
            "release; results are not comparable to LRA numbers)"
        )
        tokens, labels = generate_pathfinder_like(
            sum(self.sizes.values()), self.seed, self.settings
        )
        payload, start = {}, 0
        for split in SPLITS:
            end = start + self.sizes[split]
            payload[split] = {
                "tokens": tokens[start:end].clone(),
                "labels": labels[start:end].clone(),
            }
            start = end
        return payload

    def load_splits(self) -> dict[str, Dataset]:
        payload = cached_payload(self.cache_file, self._cache_settings(), self._build)
        log.info("Pathfinder-LIKE (generated, not the LRA release) splits from %s", self.cache_file)
        return {
            s: FixedLengthTokenDataset(payload[s]["tokens"], payload[s]["labels"]) for s in SPLITS
        }
