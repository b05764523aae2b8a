"""ListOps: labels vs an independent evaluator, lengths, distinctness, seeds, splits, tokens."""

import statistics

import pytest
import torch

from race.data.listops import (
    VOCAB_SIZE,
    ListOpsDataModule,
    decode,
    encode,
    generate_listops,
)

SMALL = dict(min_length=20, max_length=100, max_depth=10, max_args=10)


# an evaluator written from the task description, sharing no code with the library


def parse(tokens, i=0):
    """-> (node, next index); node is an int or (operator, [children])."""
    token = tokens[i]
    if token.isdigit():
        return int(token), i + 1
    assert token.startswith("["), token
    children, i = [], i + 1
    while tokens[i] != "]":
        child, i = parse(tokens, i)
        children.append(child)
    return (token[1:], children), i + 1


def evaluate(node):
    if isinstance(node, int):
        return node
    operator, children = node
    values = [evaluate(c) for c in children]
    return {
        "MIN": min,
        "MAX": max,
        "MED": lambda v: int(statistics.median(v)),
        "SM": lambda v: sum(v) % 10,
    }[operator](values)


def shape(node, depth=1):
    """-> (nesting depth counting the root as 1, list of argument counts)."""
    if isinstance(node, int):
        return depth, []
    _, children = node
    results = [shape(c, depth + 1) for c in children]
    return max(d for d, _ in results), [len(children)] + [n for _, ns in results for n in ns]


@pytest.fixture(scope="module")
def small_set():
    return generate_listops(600, seed=0, **SMALL)


def test_labels_match_an_independent_evaluator(small_set):
    sequences, labels = small_set
    for ids, label in zip(sequences, labels):
        tokens = decode(ids).split()
        tree, end = parse(tokens)
        assert end == len(tokens)
        assert evaluate(tree) == label
    assert set(labels) == set(range(10))  # every class occurs


def test_known_examples():
    for text, value in [
        ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
        ("[MED 1 2 3 8 ]", 2),  # median 2.5 truncated
        ("[SM 9 8 [MIN 3 5 ] ]", 0),
    ]:
        assert evaluate(parse(text.split())[0]) == value
        assert decode(encode(text)) == text


def test_lengths_in_range_and_trees_well_formed(small_set):
    sequences, _ = small_set
    lengths = [len(s) for s in sequences]
    assert all(SMALL["min_length"] < n < SMALL["max_length"] for n in lengths)
    assert min(lengths) < 40 and max(lengths) > 80  # the range is actually used
    for ids in sequences[:200]:
        tree, _ = parse(decode(ids).split())
        depth, arg_counts = shape(tree)
        assert depth <= SMALL["max_depth"]
        assert all(2 <= n <= SMALL["max_args"] for n in arg_counts)


def test_depth_and_args_limits_are_respected():
    sequences, _ = generate_listops(100, min_length=4, max_length=60, max_depth=3, max_args=3)
    for ids in sequences:
        depth, arg_counts = shape(parse(decode(ids).split())[0])
        assert depth <= 3 and all(2 <= n <= 3 for n in arg_counts)


def test_trees_are_distinct(small_set):
    sequences, _ = small_set
    assert len({tuple(s) for s in sequences}) == len(sequences)


def test_deterministic_by_seed():
    a = generate_listops(50, seed=3, **SMALL)
    b = generate_listops(50, seed=3, **SMALL)
    c = generate_listops(50, seed=4, **SMALL)
    assert a == b
    assert a[0] != c[0]


def test_token_round_trip_and_vocabulary(small_set):
    sequences, _ = small_set
    for ids in sequences[:50]:
        assert encode(decode(ids)) == list(ids)
        assert all(0 < i < VOCAB_SIZE for i in ids)
    assert encode("( [MAX 2 ( 9 ) ] )") == encode("[MAX 2 9 ]")  # LRA's tree brackets skipped
    with pytest.raises(ValueError, match="unknown ListOps token"):
        encode("[MAX 2 [ 9 ]")


def test_impossible_settings_raise():
    with pytest.raises(ValueError, match="min_length"):
        generate_listops(10, min_length=50, max_length=51)
    with pytest.raises(ValueError, match="widen the length range"):
        # max_depth 2 and max_args 2 allow only lengths 1 and 4
        generate_listops(
            10,
            min_length=4,
            max_length=6,
            max_depth=2,
            max_args=2,
            max_attempts_without_progress=2000,
        )


def test_datamodule_splits_and_batches(tmp_path):
    dm = ListOpsDataModule(
        seq_len=100,
        num_train=300,
        num_val=40,
        num_test=30,
        batch_size=16,
        data_dir=tmp_path,
        **SMALL,
    )
    assert (dm.num_classes, dm.vocab_size, dm.seq_len, dm.pad_id) == (10, VOCAB_SIZE, 100, 0)
    dm.prepare_data()
    dm.setup("fit")
    assert [len(dm.dataset(s)) for s in ("train", "val", "test")] == [300, 40, 30]
    all_trees = [
        tuple(dm.dataset(s)[i][0].tolist())
        for s in ("train", "val", "test")
        for i in range(len(dm.dataset(s)))
    ]
    assert len(set(all_trees)) == 370  # no tree shared between splits

    batch = next(iter(dm.train_dataloader()))
    assert set(batch) == {"input_ids", "padding_mask", "labels"}
    assert batch["input_ids"].shape == (16, 100) and batch["input_ids"].dtype == torch.long
    assert batch["padding_mask"].dtype == torch.bool and batch["labels"].shape == (16,)
    assert torch.equal(batch["padding_mask"], batch["input_ids"] == 0)
    for ids, mask, label in zip(batch["input_ids"], batch["padding_mask"], batch["labels"]):
        assert evaluate(parse(decode(ids[~mask]).split())[0]) == label

    val = next(iter(dm.val_dataloader()))
    ids, label = dm.dataset("val")[0]
    assert torch.equal(val["input_ids"][0, : len(ids)], ids) and val["labels"][0] == label

    # A second module with the same settings reads the same cache and the same data.
    again = ListOpsDataModule(
        seq_len=100, num_train=300, num_val=40, num_test=30, data_dir=tmp_path, **SMALL
    )
    again.setup()
    assert torch.equal(again.dataset("test").tokens, dm.dataset("test").tokens)
    assert len(list(tmp_path.glob("listops_*.pt"))) == 1


def test_seq_len_shorter_than_trees_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="seq_len >= 99"):
        ListOpsDataModule(seq_len=64, data_dir=tmp_path, **SMALL)


def test_released_tsv_format(tmp_path):
    from race.data.listops_release import ListOpsReleasedDataModule

    folder = tmp_path / "lra_release" / "listops-1000"
    folder.mkdir(parents=True)
    rows = {"train": [("( ( [MAX 2 9 ) ( ( [MIN 4 7 ) ] ) 0 ) ]", 9), ("( [SM 9 8 ) ]", 7)],
            "val": [("( [MED 1 2 3 8 ) ]", 2)], "test": [("5", 5)]}  # fmt: skip
    for split, split_rows in rows.items():
        lines = ["Source\tTarget"] + [f"{text}\t{label}" for text, label in split_rows]
        (folder / f"basic_{split}.tsv").write_text("\n".join(lines) + "\n")
    dm = ListOpsReleasedDataModule(seq_len=16, batch_size=2, data_dir=tmp_path)
    assert (dm.num_classes, dm.vocab_size, dm.pad_id) == (10, VOCAB_SIZE, 0)
    dm.setup()
    ids, label = dm.dataset("train")[0]
    assert decode(ids) == "[MAX 2 9 [MIN 4 7 ] 0 ]" and label == 9
    assert evaluate(parse(decode(ids).split())[0]) == label
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (2, 16)
    with pytest.raises(ValueError, match="seq_len >= 9"):
        ListOpsReleasedDataModule(seq_len=8, data_dir=tmp_path).setup()
    with pytest.raises(FileNotFoundError, match=r"lra_release\.gz.*data\.data_path"):
        ListOpsReleasedDataModule(data_dir=tmp_path / "empty").setup()


def test_collate_rejects_sequences_longer_than_seq_len():
    from race.data.collate import ClassificationCollate

    collate = ClassificationCollate(seq_len=4)
    with pytest.raises(ValueError, match=r"raise seq_len \(data\.seq_len\) to at least 5"):
        collate([(torch.tensor(encode("[MAX 1 2 3 ]")), 3)])
