"""The generated-data cache: keyed by settings, atomic, self-healing, safe under concurrency."""

import multiprocessing
import time

import torch

from race.data.cache import cache_path, cached_payload
from race.data.listops import ListOpsDataModule

SETTINGS = {"dataset": "toy", "n": 3}


def toy_payload(n=3):
    return {"train": {"x": torch.arange(n), "y": torch.ones(n, dtype=torch.long)}}


class CountingBuild:
    def __init__(self, n=3):
        self.calls, self.n = 0, n

    def __call__(self):
        self.calls += 1
        return toy_payload(self.n)


def test_key_changes_with_every_setting(tmp_path):
    base = dict(
        seq_len=100,
        min_length=20,
        max_length=100,
        max_depth=10,
        max_args=10,
        num_train=10,
        num_val=5,
        num_test=5,
        seed=0,
        data_dir=tmp_path,
    )
    paths = {ListOpsDataModule(**base).cache_file}
    for name, value in [
        ("min_length", 21),
        ("max_length", 99),
        ("max_depth", 9),
        ("max_args", 9),
        ("num_train", 11),
        ("num_val", 6),
        ("num_test", 6),
        ("seed", 1),
    ]:
        path = ListOpsDataModule(**{**base, name: value}).cache_file
        assert path not in paths, name
        paths.add(path)
    assert ListOpsDataModule(**base).cache_file in paths  # same settings, same file
    assert ListOpsDataModule(**{**base, "batch_size": 7}).cache_file in paths  # not a data setting
    name = ListOpsDataModule(**base).cache_file.name
    assert name.startswith("listops_len20-100_depth10_args10_n10-5-5_seed0-")
    assert name.endswith(".pt")


def test_second_call_reads_the_cache(tmp_path):
    path, build = cache_path(tmp_path, "toy", SETTINGS), CountingBuild()
    first = cached_payload(path, SETTINGS, build)
    second = cached_payload(path, SETTINGS, build)
    assert build.calls == 1
    assert torch.equal(first["train"]["x"], second["train"]["x"])


def test_truncated_cache_is_rebuilt(tmp_path):
    path, build = cache_path(tmp_path, "toy", SETTINGS), CountingBuild()
    cached_payload(path, SETTINGS, build)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    payload = cached_payload(path, SETTINGS, build)
    assert build.calls == 2 and torch.equal(payload["train"]["x"], torch.arange(3))
    assert cached_payload(path, SETTINGS, build) is not None and build.calls == 2


def test_checksum_or_settings_mismatch_is_rebuilt(tmp_path):
    path, build = cache_path(tmp_path, "toy", SETTINGS), CountingBuild()
    cached_payload(path, SETTINGS, build)
    blob = torch.load(path, weights_only=True)
    blob["payload"]["train"]["x"][0] = 42  # a loadable file whose content changed
    torch.save(blob, path)
    assert cached_payload(path, SETTINGS, build)["train"]["x"][0] == 0 and build.calls == 2
    blob = torch.load(path, weights_only=True)
    blob.pop("checksum")  # no completion marker
    torch.save(blob, path)
    cached_payload(path, SETTINGS, build)
    assert build.calls == 3


def test_leftover_tmp_is_ignored_and_removed(tmp_path):
    path, build = cache_path(tmp_path, "toy", SETTINGS), CountingBuild()
    leftover = path.parent / (path.name + ".12345.tmp")
    leftover.write_bytes(b"half a file from a killed run")
    cached_payload(path, SETTINGS, build)
    assert build.calls == 1 and not leftover.exists()
    assert [p.name for p in tmp_path.glob("*.tmp")] == []


def test_failed_build_leaves_no_file(tmp_path):
    path = cache_path(tmp_path, "toy", SETTINGS)

    def broken():
        raise RuntimeError("killed")

    try:
        cached_payload(path, SETTINGS, broken)
    except RuntimeError:
        pass
    assert not path.exists() and list(tmp_path.glob("*.tmp")) == []


def _generate_in_child(data_dir, queue):
    path = cache_path(data_dir, "toy", SETTINGS)

    def slow_build():
        (data_dir / f"built-by-{multiprocessing.current_process().pid}").touch()
        time.sleep(0.5)  # long enough for the other process to reach the lock
        return toy_payload()

    payload = cached_payload(path, SETTINGS, slow_build)
    queue.put(payload["train"]["x"].tolist())


def test_two_processes_generating_at_once_both_end_valid(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    workers = [context.Process(target=_generate_in_child, args=(tmp_path, queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert results == [[0, 1, 2], [0, 1, 2]]
    assert len(list(tmp_path.glob("built-by-*"))) == 1  # the lock made the second one wait
    build = CountingBuild()
    cached_payload(cache_path(tmp_path, "toy", SETTINGS), SETTINGS, build)
    assert build.calls == 0 and list(tmp_path.glob("*.tmp")) == []
