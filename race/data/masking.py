"""BERT's masked-language-model corruption (Devlin et al. 2019, section 3.1).

Each non-special token is selected with probability `mask_prob` (0.15); a selected token is
replaced by [MASK] with probability 0.8, by a random regular token with probability 0.1, and
kept with probability 0.1. The loss is taken on selected positions only: labels hold the
original id there and IGNORE_INDEX (-100, torch's cross-entropy default) everywhere else.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

IGNORE_INDEX = -100


def mask_tokens(
    input_ids: torch.Tensor,
    *,
    mask_id: int,
    special_ids: Sequence[int],
    num_tokens: int,
    mask_prob: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids (any shape, long) -> (corrupted ids, labels), both of the same shape.

    special_ids (pad, [CLS], [SEP], [MASK], ...) are never selected nor drawn as random
    replacements; random replacements are drawn uniformly from the other ids < num_tokens.
    `generator` makes the draw reproducible (None: torch's global RNG, which Lightning seeds).
    """
    if not 0.0 < mask_prob < 1.0:
        raise ValueError(f"mask_prob must be in (0, 1), got {mask_prob}")
    largest = int(input_ids.max()) if input_ids.numel() else 0
    special = torch.zeros(max(num_tokens, largest + 1), dtype=torch.bool)
    special[torch.as_tensor(list(special_ids), dtype=torch.long)] = True
    regular_ids = torch.nonzero(~special[:num_tokens]).squeeze(1)

    def uniform():
        return torch.rand(input_ids.shape, generator=generator)

    selected = (uniform() < mask_prob) & ~special[input_ids]
    action = uniform()  # < 0.8: [MASK]; 0.8..0.9: random token; >= 0.9: unchanged
    random_pick = torch.randint(len(regular_ids), input_ids.shape, generator=generator)
    corrupted = torch.where(selected & (action < 0.8), torch.full_like(input_ids, mask_id),
                            input_ids)
    corrupted = torch.where(selected & (action >= 0.8) & (action < 0.9), regular_ids[random_pick],
                            corrupted)
    labels = torch.where(selected, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    return corrupted, labels
