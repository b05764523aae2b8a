"""The paper's non-LRA tasks through train.py: every conf/task file composes with the paper's
settings and runs fast_dev_run with race and softmax on tiny copies in the real data formats."""

import math
import os
import sys
from pathlib import Path

import paper_data_writers as writers
import pytest
import torchvision.datasets.cifar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from hydra_runs import compose_run, read_record  # noqa: E402

import train as train_script  # noqa: E402  (registers the config resolvers)

LM_TASKS = ["lm_wikitext103", "lm_ptb", "mlm_tinystories"]
TEXT_TASKS = ["imdb", "sst2", "yahoo", "qnli", "arxiv"]
IMAGE_TASKS = ["cifar10", "fashion_mnist", "food101"]
PAPER_TASKS = LM_TASKS + TEXT_TASKS + IMAGE_TASKS
TINY_MODEL = ["model.dim=16", "model.depth=1", "model.heads=2", "model.mlp_dim=32",
              "model.dropout=0.0"]
CPU = ["trainer=cpu", "trainer.enable_model_summary=false", "callbacks.progress_bar=null"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("paper_data")
    writers.write_gpt2_files(root / "gpt2")
    writers.write_fashion_mnist(root / "tv")
    writers.write_cifar10(root / "tv")
    writers.write_food101(root / "tv")
    return {
        "dir": root,
        "wikitext": writers.write_wikitext(root / "wikitext"),
        "ptb": writers.write_ptb(root / "ptb"),
        "tinystories": writers.write_tinystories(root / "tinystories"),
        "imdb": writers.write_imdb(root / "imdb"),
        "sst2": writers.write_sst2_jsonl(root / "sst2"),
        "yahoo": writers.write_yahoo(root / "yahoo"),
        "qnli": writers.write_qnli(root / "glue"),
        "arxiv": writers.write_arxiv(root / "arxiv"),
    }


@pytest.fixture
def skip_cifar_md5(monkeypatch):
    """torchvision checks the real files' md5 sums; the tiny copies only need to exist."""
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity",
                        lambda path, md5=None: os.path.exists(path))


def tiny_data(task: str, root: dict) -> list[str]:
    """Overrides that point a task at the tiny copies, with tiny lengths and batches."""
    common = [f"paths.data_dir={root['dir'] / 'cache'}", "data.batch_size=2"]
    tv = root["dir"] / "tv"
    return common + {
        # GPT-2 BPE from local files (the real format), and the bytes fallback without them
        "lm_wikitext103": [f"data.data_path={root['wikitext']}", "data.seq_len=32",
                           f"data.tokenizer_path={root['dir'] / 'gpt2'}"],
        "lm_ptb": [f"data.data_path={root['ptb']}", "data.seq_len=32"],
        "mlm_tinystories": [f"data.data_path={root['tinystories']}", "data.seq_len=32",
                            "data.tokenizer_vocab_size=100"],
        "imdb": [f"data.data_path={root['imdb']}", "data.seq_len=16",
                 "data.tokenizer_vocab_size=120"],
        "sst2": [f"data.data_path={root['sst2']}", "data.seq_len=24", "data.tokenizer=bytes"],
        "yahoo": [f"data.data_path={root['yahoo']}", "data.seq_len=24", "data.tokenizer=bytes"],
        "qnli": [f"data.data_path={root['qnli']}", "data.seq_len=24", "data.tokenizer=bytes"],
        "arxiv": [f"data.data_path={root['arxiv']}", "data.seq_len=64",
                  "data.tokenizer_vocab_size=50"],
        "cifar10": [f"data.data_path={tv}", "data.num_workers=0"],
        "fashion_mnist": [f"data.data_path={tv}", "data.num_workers=0"],
        "food101": [f"data.data_path={tv}", "data.num_workers=0", "data.image_size=16",
                    "data.classes_kept=2"],
    }[task]


# the paper's settings


def test_language_model_configs(tmp_path):
    for task in ("lm_wikitext103", "lm_ptb"):
        cfg = compose_run([f"task={task}"], tmp_path)
        assert cfg.module._target_ == "race.tasks.CausalLMTask"
        assert (cfg.data.seq_len, cfg.data.tokenizer, cfg.data.tokenizer_fallback) == (
            1024, "gpt2", "bytes")
        assert (cfg.module.optimizer.lr, cfg.module.optimizer.weight_decay) == (6e-4, 0.1)
        assert cfg.module.causal_race_temperature == "fixed"
        assert cfg.model.positions == "learned" and cfg.model.tie_weights
        assert cfg.callbacks.model_checkpoint.monitor == "val/loss"
        assert cfg.callbacks.model_checkpoint.mode == "min"
    cfg = compose_run(["task=mlm_tinystories"], tmp_path)
    assert cfg.module._target_ == "race.tasks.MaskedLMTask"
    assert (cfg.model.dim, cfg.model.heads, cfg.model.depth, cfg.model.dropout) == (384, 4, 6, 0.1)
    assert (cfg.module.optimizer.lr, cfg.module.optimizer.weight_decay) == (6e-4, 0.1)
    assert cfg.module.scheduler.name == "linear"
    assert cfg.module.scheduler.warmup_steps == 0.01 * cfg.trainer.max_steps  # 1% warm-up
    assert (cfg.data.seq_len, cfg.data.mask_prob, cfg.data.tokenizer) == (1024, 0.15, "wordpiece")
    assert compose_run(["task=mlm_tinystories", "data.seq_len=512"], tmp_path).data.seq_len == 512


def test_classification_configs(tmp_path):
    lengths = {"imdb": 512, "sst2": 1024, "yahoo": 256, "qnli": 2048, "arxiv": 16384}
    for task, length in lengths.items():
        cfg = compose_run([f"task={task}"], tmp_path)
        assert (cfg.data.dataset, cfg.data.seq_len) == (task, length)
        assert cfg.module._target_ == "race.tasks.ClassificationTask"
    arxiv = compose_run(["task=arxiv"], tmp_path)
    model = arxiv.model
    assert (model.depth, model.dim, model.heads, model.mlp_dim, model.dropout) == (
        4, 256, 4, 1024, 0.1)
    assert (arxiv.module.optimizer.lr, arxiv.module.optimizer.weight_decay) == (3e-4, 0.01)
    assert (arxiv.data.batch_size, arxiv.trainer.accumulate_grad_batches) == (4, 16)
    assert (arxiv.trainer.max_epochs, arxiv.data.tokenizer, arxiv.data.pack_per_class) == (
        50, "word", True)
    for length in (32768, 65536):
        cfg = compose_run(["task=arxiv", f"data.seq_len={length}"], tmp_path)
        assert cfg.data.seq_len == length


def test_image_configs(tmp_path):
    food = compose_run(["task=food101"], tmp_path)
    assert (food.data.image_size, food.data.patch_size, food.data.classes_kept) == (512, 4, 50)
    assert food.data.augment and food.data.batch_size == 8
    assert (food.model.depth, food.model.dim, food.model.heads, food.model.mlp_dim) == (
        8, 512, 8, 2048)
    for task in IMAGE_TASKS:
        cfg = compose_run([f"task={task}"], tmp_path)
        assert cfg.module._target_ == "race.tasks.ImageClassificationTask"
        assert cfg.data.dataset == task


# training runs


@pytest.mark.parametrize("attention", ["race", "softmax"])
@pytest.mark.parametrize("task", PAPER_TASKS)
def test_paper_task_fast_dev_run(task, attention, data_root, tmp_path, skip_cifar_md5):
    overrides = [f"task={task}", f"attn={attention}", *CPU, *TINY_MODEL,
                 *tiny_data(task, data_root), "trainer.fast_dev_run=true"]
    record = train_script.train(compose_run(overrides, tmp_path))
    assert record["status"] == "completed"
    metrics = record["metrics"]
    if task in LM_TASKS:
        assert set(metrics) >= {"train/loss", "val/loss", "val/ppl", "test/loss", "test/ppl"}
        for split in ("val", "test"):
            assert math.isclose(metrics[f"{split}/ppl"], math.exp(metrics[f"{split}/loss"]),
                                rel_tol=1e-4)
            # an untrained model is about as unsure as a uniform guess over its vocabulary
            # (at most 262 tokens here: the miniature GPT-2, bytes, a 100-token WordPiece)
            assert 50 < metrics[f"{split}/ppl"] < 2 * 262
    else:
        assert set(metrics) >= {"train/loss", "val/acc", "test/acc"}
        assert 0 <= metrics["test/acc"] <= 1


def test_causal_race_uses_the_fixed_temperature_unless_told_otherwise(data_root, tmp_path):
    from race.tasks import CausalLMTask

    tiny = {"dim": 16, "depth": 1, "heads": 2, "mlp_dim": 32, "dropout": 0.0}
    attention = {"name": "race", "hyperplanes": 2, "tables": 2, "temperature": "learned"}
    fixed = CausalLMTask(50, 8, tiny, attention)
    learned = CausalLMTask(50, 8, tiny, attention, causal_race_temperature=None)
    race_of = [m.model.stack.blocks[0].attention.attention for m in (fixed, learned)]
    # a learned temperature is a parameter; a fixed one is not
    assert not [n for n, _ in race_of[0].named_parameters()]
    assert [n for n, _ in race_of[1].named_parameters()]
    assert fixed.hparams.attention["temperature"] == "learned"  # the config as given


def test_causal_task_refuses_linformer_before_reading_data(data_root, tmp_path):
    cache = tmp_path / "cache"
    overrides = ["task=lm_wikitext103", "attn=linformer", *CPU, *TINY_MODEL,
                 f"data.data_path={data_root['wikitext']}", "data.seq_len=32",
                 f"paths.data_dir={cache}"]
    # (Hydra wraps the module's ValueError in an InstantiationException with the same message)
    with pytest.raises(Exception, match="attn=linformer cannot be causal.*choose attn="):
        train_script.train(compose_run(overrides, tmp_path / "run"))
    assert not (cache / "tokenized").exists()
    record = read_record(tmp_path / "run")
    assert record["status"] == "failed" and record["global_step"] == 0


def test_linformer_runs_masked_lm_and_images(data_root, tmp_path, skip_cifar_md5):
    """Non-causal tasks take every attention; image tasks have no data.seq_len, so linformer
    takes the model's length (the number of pixel tokens)."""
    runs = {"mlm_tinystories": [], "fashion_mnist": []}
    for task, extra in runs.items():
        overrides = [f"task={task}", "attn=linformer", "attn.k=8", *CPU, *TINY_MODEL,
                     *tiny_data(task, data_root), *extra, "trainer.fast_dev_run=true"]
        record = train_script.train(compose_run(overrides, tmp_path / task))
        assert record["status"] == "completed"


def test_long_context_options_run(data_root, tmp_path):
    """Activation checkpointing, gradient accumulation and a per-device batch, as arxiv uses."""
    overrides = ["task=arxiv", "attn=race", *CPU, *TINY_MODEL, *tiny_data("arxiv", data_root),
                 "model.checkpointing=true", "trainer.accumulate_grad_batches=2",
                 "trainer.max_steps=1", "trainer.limit_val_batches=1",
                 "trainer.limit_test_batches=1", "trainer.num_sanity_val_steps=0"]
    record = train_script.train(compose_run(overrides, tmp_path))
    assert record["status"] == "completed" and record["global_step"] == 1
    assert record["config"]["model"]["checkpointing"] is True


@pytest.mark.slow
@pytest.mark.parametrize("task", ["lm_ptb", "mlm_tinystories"])
def test_language_models_learn_a_tiny_corpus(task, data_root, tmp_path):
    """A few dozen updates take perplexity far below the untrained (about vocabulary-sized) one:
    the loss reaches the model through the right labels."""
    overrides = [f"task={task}", "attn=race", *CPU, *TINY_MODEL, *tiny_data(task, data_root),
                 "model.dim=32", "model.mlp_dim=64", "module.optimizer.lr=3e-3",
                 "module.scheduler.warmup_steps=0", "trainer.max_steps=40",
                 "trainer.val_check_interval=40", "trainer.check_val_every_n_epoch=null",
                 "trainer.num_sanity_val_steps=0", "trainer.max_epochs=null"]
    record = train_script.train(compose_run(overrides, tmp_path))
    assert record["status"] == "completed" and record["global_step"] == 40
    # untrained: about 261 (byte-level ptb) and 100 (the 100-token WordPiece)
    assert record["metrics"]["test/ppl"] < 30, record["metrics"]
