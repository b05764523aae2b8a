"""LRA ListOps: the exact generator (offline, seeded), its tokenizer and its data module.

Generator (Long Range Arena, lra_benchmarks/data/listops.py, which forks the ListOps paper's):
a node at depth < max_depth is a leaf with probability 0.75, otherwise an operator (MIN, MAX,
MED = int(median), SM = sum mod 10) over 2..max_args children (uniform, inclusive), each one
level deeper; a node at max_depth is always a leaf; leaf values are uniform in 0..9. As in LRA
the root is at depth 1, and each operator node draws its leaf/operator coin, then its number of
arguments, then its children, then its operator. The length of a tree is its token count
(1 for a leaf, 2 + the children's lengths for an operator: "[OP" and "]"); trees with
min_length < length < max_length are kept, duplicates dropped, and the first
num_train / num_val / num_test distinct trees in generation order become the splits.

Tokens: as in LRA's text, the opening bracket is part of the operator token ("[MAX" is one
token), so a tree of length n is exactly n tokens. There is no separate "[" token.
Vocabulary: 0 = pad, 1..4 = [MIN [MAX [MED [SM, 5..14 = digits 0..9, 15 = "]" (vocab_size 16).
"""

from __future__ import annotations

import logging
import os
import random

from torch.utils.data import Dataset

from .cache import cache_path, cached_payload
from .datamodule import SPLITS, TokenDataModule
from .ragged import RaggedTokenDataset, pack_byte_strings

log = logging.getLogger(__name__)

# tokens

PAD_ID = 0
OPERATORS = ("[MIN", "[MAX", "[MED", "[SM")
CLOSE = "]"
VOCAB = ("<pad>", *OPERATORS, *(str(d) for d in range(10)), CLOSE)
TOKEN_TO_ID = {token: i for i, token in enumerate(VOCAB)}
DIGIT_OFFSET = TOKEN_TO_ID["0"]  # id of digit d is DIGIT_OFFSET + d
CLOSE_ID = TOKEN_TO_ID[CLOSE]
OPERATOR_IDS = tuple(TOKEN_TO_ID[op] for op in OPERATORS)
VOCAB_SIZE = len(VOCAB)
NUM_CLASSES = 10

LEAF_PROBABILITY = 0.75  # LRA: `if random.random() > VALUE_P (0.25)` -> leaf


def encode(text: str) -> list[int]:
    """'[MAX 2 9 [MIN 4 7 ] 0 ]' -> token ids. LRA's '(' and ')' (tree brackets) are skipped."""
    ids = []
    for token in text.split():
        if token in ("(", ")"):
            continue
        if token not in TOKEN_TO_ID or token == VOCAB[PAD_ID]:
            raise ValueError(f"unknown ListOps token {token!r}; the vocabulary is {VOCAB[1:]}")
        ids.append(TOKEN_TO_ID[token])
    return ids


def decode(ids) -> str:
    """Token ids -> '[MAX 2 9 [MIN 4 7 ] 0 ]' (padding dropped)."""
    return " ".join(VOCAB[int(i)] for i in ids if int(i) != PAD_ID)


def apply_operator(operator_id: int, values: list[int]) -> int:
    operator = VOCAB[operator_id]
    if operator == "[MIN":
        return min(values)
    if operator == "[MAX":
        return max(values)
    if operator == "[MED":
        # np.median (mean of the two middle values if even) truncated by int(), as in LRA
        ordered, mid = sorted(values), len(values) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) // 2
    if operator == "[SM":
        return sum(values) % 10
    raise ValueError(f"not an operator id: {operator_id}")


# generator


class _TooLong(Exception):
    """Raised to abandon a tree as soon as it reaches max_length (it would be rejected anyway)."""


def _generate_tree(
    rng: random.Random, depth: int, max_depth: int, max_args: int, tokens: list, limit: int
) -> int:
    """Append one tree's token ids to ``tokens``; return its value."""
    r = rng.random() if depth < max_depth else 1.0
    if r > 1.0 - LEAF_PROBABILITY:
        value = rng.randrange(10)
        tokens.append(DIGIT_OFFSET + value)
        if len(tokens) >= limit:
            raise _TooLong
        return value
    num_args = rng.randint(2, max_args)
    slot = len(tokens)
    tokens.append(None)  # the operator is drawn after the children, as in LRA
    values = [
        _generate_tree(rng, depth + 1, max_depth, max_args, tokens, limit) for _ in range(num_args)
    ]
    operator_id = OPERATOR_IDS[rng.randrange(len(OPERATOR_IDS))]
    tokens[slot] = operator_id
    tokens.append(CLOSE_ID)
    if len(tokens) >= limit:
        raise _TooLong
    return apply_operator(operator_id, values)


def generate_listops(
    num_samples: int,
    min_length: int = 500,
    max_length: int = 2000,
    max_depth: int = 10,
    max_args: int = 10,
    seed: int = 0,
    max_attempts_without_progress: int = 1_000_000,
) -> tuple[list[bytes], list[int]]:
    """``num_samples`` distinct trees with min_length < length < max_length.

    Returns (token ids of each tree as a bytes object, one id per byte; labels).
    """
    if max_args < 2:
        raise ValueError(f"max_args must be >= 2 (operators take 2..max_args), got {max_args}")
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth}")
    if not 0 <= min_length < max_length - 1:
        raise ValueError(
            f"need 0 <= min_length < max_length - 1 so that some length fits strictly between "
            f"them; got min_length={min_length}, max_length={max_length}"
        )
    rng = random.Random(seed)
    seen: set[bytes] = set()
    sequences: list[bytes] = []  # one byte per token id (ids < 256): compact at LRA scale
    labels: list[int] = []
    attempts_since_progress = 0
    while len(sequences) < num_samples:
        tokens: list = []
        try:
            value = _generate_tree(rng, 1, max_depth, max_args, tokens, max_length)
        except _TooLong:
            value = None
        attempts_since_progress += 1
        if value is not None and len(tokens) > min_length:
            key = bytes(tokens)
            if key not in seen:
                seen.add(key)
                sequences.append(key)
                labels.append(value)
                attempts_since_progress = 0
        if attempts_since_progress > max_attempts_without_progress:
            raise ValueError(
                f"found only {len(sequences)} of {num_samples} distinct ListOps trees with "
                f"{min_length} < length < {max_length} (max_depth={max_depth}, "
                f"max_args={max_args}) after {max_attempts_without_progress} tries without a new "
                "one; widen the length range, raise max_depth/max_args, or ask for fewer samples"
            )
    return sequences, labels


# data module


class ListOpsDataModule(TokenDataModule):
    """LRA ListOps, generated offline and cached under data_dir (see the module docstring).

    LRA settings: seq_len=2000, min_length=500, max_length=2000, max_depth=10, max_args=10,
    96,000 / 2,000 / 2,000 samples. Batches: {"input_ids", "padding_mask", "labels"}.
    """

    num_classes = NUM_CLASSES
    vocab_size = VOCAB_SIZE
    pad_id = PAD_ID

    def __init__(
        self,
        seq_len: int = 2000,
        min_length: int = 500,
        max_length: int = 2000,
        max_depth: int = 10,
        max_args: int = 10,
        num_train: int = 96_000,
        num_val: int = 2_000,
        num_test: int = 2_000,
        batch_size: int = 32,
        num_workers: int = 0,
        seed: int = 0,
        data_dir: str | os.PathLike | None = None,
    ):
        super().__init__(batch_size, num_workers, seed, data_dir)
        longest = max_length - 1  # lengths are strictly below max_length
        if seq_len < longest:
            raise ValueError(
                f"seq_len={seq_len} is shorter than the longest ListOps tree the generator can "
                f"produce (max_length - 1 = {longest}); set seq_len >= {longest} or "
                f"max_length <= {seq_len + 1}"
            )
        self.seq_len = seq_len
        self.generator_settings = {
            "min_length": min_length,
            "max_length": max_length,
            "max_depth": max_depth,
            "max_args": max_args,
            "num_train": num_train,
            "num_val": num_val,
            "num_test": num_test,
            "seed": seed,
        }
        # Fail on impossible settings now, not after Lightning has started.
        if min(num_train, num_val, num_test) < 0:
            raise ValueError("num_train, num_val and num_test must be >= 0")
        generate_listops(0, min_length, max_length, max_depth, max_args, seed)

    @property
    def cache_file(self):
        s = self.generator_settings
        prefix = (
            f"listops_len{s['min_length']}-{s['max_length']}_depth{s['max_depth']}"
            f"_args{s['max_args']}_n{s['num_train']}-{s['num_val']}-{s['num_test']}_seed{s['seed']}"
        )
        return cache_path(self.data_dir, prefix, {"dataset": "listops", **s})

    def _build(self) -> dict:
        s = self.generator_settings
        sizes = {"train": s["num_train"], "val": s["num_val"], "test": s["num_test"]}
        sequences, labels = generate_listops(
            sum(sizes.values()),
            s["min_length"],
            s["max_length"],
            s["max_depth"],
            s["max_args"],
            s["seed"],
        )
        payload, start = {}, 0
        for split in SPLITS:
            end = start + sizes[split]
            payload[split] = pack_byte_strings(sequences[start:end], labels[start:end])
            start = end
        return payload

    def load_splits(self) -> dict[str, Dataset]:
        path = self.cache_file
        payload = cached_payload(
            path, {"dataset": "listops", **self.generator_settings}, self._build
        )
        log.info("ListOps splits from %s", path)
        return {split: RaggedTokenDataset.from_packed(payload[split]) for split in SPLITS}
