"""The paper tasks' models: token-by-token decoding equals the causal forward pass, recurrent
states do not grow, sampling and the generate CLI, activation checkpointing, the masked-LM
loss, the pixel embedding."""

import subprocess
import sys
from pathlib import Path

import paper_data_writers as writers
import pytest
import torch
from hydra import compose, initialize_config_dir

from race.generate import CheckpointTokenizer, generate_text, parse_options
from race.models import DecoderLM, MaskedLM, PixelClassifier, TransformerStack
from race.models.decoder import sample
from race.tasks.language_model import token_loss

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import train as train_script  # noqa: E402

TINY = {"dim": 16, "depth": 2, "heads": 2, "mlp_dim": 32, "dropout": 0.0}
RECURRENT = {"race": {"hyperplanes": 2, "tables": 2, "temperature": "fixed", "seed": 3},
             "linear": {}, "performer": {"seed": 3}}


def tiny_lm(attention, options=None, vocab_size=40, max_seq_len=24):
    torch.manual_seed(0)
    return DecoderLM(vocab_size, max_seq_len, attention=attention, attention_options=options,
                     **TINY).double().eval()


@pytest.mark.parametrize("attention", ["race", "linear", "performer", "softmax"])
def test_step_by_step_decoding_equals_the_causal_forward(attention):
    model = tiny_lm(attention, RECURRENT.get(attention))
    ids = torch.randint(0, 40, (3, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(ids)  # (B, N, V)
        state, steps = None, []
        for t in range(ids.shape[1]):
            logits, state = model.decode_step(ids[:, t:t + 1], state)
            steps.append(logits)
    assert state.position == ids.shape[1]
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=1e-9, atol=1e-9)


def tensor_sizes(cache) -> list[int]:
    """Sizes of every tensor inside a cache (tensors, dicts, sequences, dataclasses)."""
    if isinstance(cache, torch.Tensor):
        return [cache.numel()]
    if isinstance(cache, dict):
        items = cache.values()
    elif isinstance(cache, (list, tuple)):
        items = cache
    elif hasattr(cache, "__dict__"):
        items = vars(cache).values()
    else:
        return []
    return [size for item in items for size in tensor_sizes(item)]


def state_sizes(state):
    return tensor_sizes(state.layers)


@pytest.mark.parametrize("attention", sorted(RECURRENT))
def test_recurrent_state_does_not_grow_with_the_context(attention):
    model = tiny_lm(attention, RECURRENT[attention])
    ids = torch.randint(0, 40, (1, 12), generator=torch.Generator().manual_seed(2))
    state, sizes = None, []
    with torch.no_grad():
        for t in range(12):
            _, state = model.decode_step(ids[:, t:t + 1], state)
            sizes.append(state_sizes(state))
    assert sizes[0] and all(s == sizes[0] for s in sizes)
    softmax = tiny_lm("softmax")
    state = None
    with torch.no_grad():
        for t in range(3):
            _, state = softmax.decode_step(ids[:, t:t + 1], state)
    assert state.layers[0]["k"].shape[-2] == 3  # the key/value cache grows instead


def test_generate_samples_within_top_k_and_refuses_a_context_too_long():
    model = tiny_lm("race", RECURRENT["race"])
    prompt = torch.tensor([[1, 2, 3]])
    greedy = model.generate(prompt, 5, temperature=0)
    assert greedy.shape == (1, 8) and torch.equal(greedy[:, :3], prompt)
    assert torch.equal(greedy, model.generate(prompt, 5, temperature=0))
    logits = torch.tensor([[0.0, 5.0, 4.0, -1.0]])
    draws = torch.cat([sample(logits, 1.0, top_k=2, generator=torch.Generator().manual_seed(i))
                       for i in range(50)])
    assert set(draws.flatten().tolist()) == {1, 2}
    with pytest.raises(ValueError, match="lower max_new_tokens"):
        model.generate(prompt, 30)


def test_activation_checkpointing_gives_the_same_gradients():
    x = torch.randn(2, 9, 16, dtype=torch.float64, requires_grad=True)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        stack = TransformerStack(16, 2, 2, 32, 0.0, "race", {"seed": 0}, causal=True,
                                 checkpointing=checkpointing).double().train()
        stack(x).square().sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in stack.parameters()])
        x.grad = None
    for plain, recomputed in zip(*grads):
        torch.testing.assert_close(plain, recomputed)


def test_masked_lm_loss_counts_the_selected_positions_only():
    torch.manual_seed(0)
    model = MaskedLM(30, 8, attention="softmax", **TINY)
    ids = torch.randint(5, 30, (2, 8))
    logits = model(ids)
    labels = torch.full((2, 8), -100)
    labels[0, 3], labels[1, 5] = 7, 9
    loss, count = token_loss(logits, labels)
    expected = torch.nn.functional.cross_entropy(logits[[0, 1], [3, 5]], torch.tensor([7, 9]))
    assert count == 2 and torch.isclose(loss, expected)
    other = logits.detach().clone()
    other[0, 0] += 100.0  # a position without a label changes nothing
    assert torch.isclose(token_loss(other, labels)[0], expected)
    assert model.head.decoder.weight is model.encoder.embedding.tokens.weight  # tied


def test_pixel_classifier_embeds_rgb_pixels_and_patches():
    for pixel_dim, n in ((3, 64), (48, 16)):
        model = PixelClassifier(pixel_dim, n, 5, attention="race", **TINY)
        assert model(torch.randn(2, n, pixel_dim)).shape == (2, 5)
        assert not hasattr(model.encoder.embedding, "tokens")  # no token table left
    with pytest.raises(ValueError, match="pixel_dim"):
        model(torch.randn(2, 16, 3))


# generation from a checkpoint


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A causal LM trained for two steps on a tiny PTB copy (byte-level tokenizer)."""
    root = tmp_path_factory.mktemp("generate")
    ptb = writers.write_ptb(root / "ptb")
    overrides = ["task=lm_ptb", "attn=race", "attn.hyperplanes=2", "attn.tables=2",
                 "trainer=cpu", "trainer.enable_model_summary=false", "callbacks.progress_bar=null",
                 "model.dim=16", "model.depth=1", "model.heads=2", "model.mlp_dim=32",
                 f"data.data_path={ptb}", "data.seq_len=32", "data.batch_size=4",
                 f"paths.data_dir={root / 'cache'}", "trainer.max_steps=2", "trainer.max_epochs=1",
                 f"paths.output_dir={root / 'run'}"]
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    record = train_script.train(cfg)
    assert record["status"] == "completed"
    assert record["checkpoints"]["monitor"] == "val/loss"  # a language model's best is by loss
    return Path(record["checkpoints"]["last"])


def test_generate_from_a_checkpoint(tiny_checkpoint):
    options = parse_options([f"ckpt={tiny_checkpoint}", "prompt=the cat", "max_new_tokens=6",
                             "temperature=0.8", "top_k=20", "seed=1"])
    text = generate_text(options)
    assert text.startswith("the cat")
    assert text == generate_text(options)  # seeded
    record = torch.load(tiny_checkpoint, weights_only=False)["tokenizer"]
    assert record["kind"] == "bytes"
    tokenizer = CheckpointTokenizer(record)
    assert tokenizer.decode(tokenizer.encode("héllo")) == "héllo"


def test_generate_cli_and_its_errors(tiny_checkpoint):
    command = [sys.executable, "-m", "race.generate", f"ckpt={tiny_checkpoint}",
               "prompt=a dog", "max_new_tokens=4", "temperature=0"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("a dog") and len(result.stdout.rstrip("\n")) >= len("a dog")
    with pytest.raises(SystemExit, match="unknown argument 'length=3'"):
        parse_options([f"ckpt={tiny_checkpoint}", "length=3"])
    with pytest.raises(SystemExit, match="ckpt=<path"):
        parse_options(["prompt=hi"])


def test_checkpoint_tokenizer_round_trips_gpt2_ids(tmp_path):
    from race.data.text_tokenizers import choose_tokenizer
    from race.tasks.language_model import tokenizer_record

    writers.write_gpt2_files(tmp_path / "gpt2")
    tokenizer = choose_tokenizer("gpt2", path=tmp_path / "gpt2").build()
    restored = CheckpointTokenizer(tokenizer_record(tokenizer))
    text = "the cat said héllo"
    assert restored.encode(text) == tokenizer.encode(text).tolist()  # the ids it trained on
    assert restored.decode(restored.encode(text)) == text
    assert restored.eos_id == tokenizer.eos_id
