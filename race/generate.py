"""Sample text from a causal language model checkpoint (a CausalLMTask trained by train.py).

    python -m race.generate ckpt=outputs/<run>/checkpoints/last.ckpt prompt="The history of" \\
        max_new_tokens=100 temperature=0.8 top_k=50 seed=0 device=cpu

The checkpoint carries the model's hyperparameters and the tokenizer it was trained with.
Decoding feeds one token at a time through every block (DecoderLM.decode_step): race, linear
and performer keep a recurrent state of fixed size (the running per-bucket sums, O(S D) per
token), softmax and angular a key/value cache. The context is at most the model's max_seq_len
(its learned positions).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, fields

import torch

USAGE = __doc__.split("\n\n")[1]


@dataclass
class GenerateOptions:
    ckpt: str = ""
    prompt: str = ""
    max_new_tokens: int = 100
    temperature: float = 1.0  # 0: greedy
    top_k: int | None = None  # None: sample from every token
    seed: int = 0
    device: str = "cpu"
    stop_at_eos: bool = False  # end at the tokenizer's end-of-text token


def parse_options(argv: list[str]) -> GenerateOptions:
    """key=value arguments (Hydra's command-line style) -> GenerateOptions."""
    types = {f.name: f.type for f in fields(GenerateOptions)}
    values: dict = {}
    for argument in argv:
        key, sep, value = argument.partition("=")
        key = key.lstrip("+")
        if not sep or key not in types:
            raise SystemExit(f"unknown argument {argument!r}; use key=value with keys "
                             f"{', '.join(types)}\n{USAGE}")
        if value.lower() in ("null", "none") and "None" in str(types[key]):
            values[key] = None
        elif "bool" in str(types[key]):
            values[key] = value.lower() in ("1", "true", "yes")
        elif "int" in str(types[key]):
            values[key] = int(value)
        elif "float" in str(types[key]):
            values[key] = float(value)
        else:
            values[key] = value
    options = GenerateOptions(**values)
    if not options.ckpt:
        raise SystemExit(f"ckpt=<path to a causal LM checkpoint> is required\n{USAGE}")
    return options


class CheckpointTokenizer:
    """Encode/decode with the tokenizer record a CausalLMTask checkpoint carries (the ids of
    race.data.text_tokenizers: the `tokenizers` backend's ids + offset, or bytes + offset)."""

    def __init__(self, record: dict):
        self.kind, self.offset = record["kind"], int(record["offset"])
        self.eos_id = record.get("eos_id")
        self.backend = None
        if record.get("json") is not None:
            from tokenizers import Tokenizer

            self.backend = Tokenizer.from_str(record["json"])

    def encode(self, text: str) -> list[int]:
        if self.backend is None:
            return [byte + self.offset for byte in text.encode("utf-8")]
        return [i + self.offset for i in self.backend.encode(text, add_special_tokens=False).ids]

    def decode(self, ids: list[int]) -> str:
        ids = [i - self.offset for i in ids if i >= self.offset]  # drops pad and our specials
        if self.backend is None:
            return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")
        return self.backend.decode(ids, skip_special_tokens=False)


def load_checkpoint(path: str, device: str = "cpu"):
    """(DecoderLM in eval mode, CheckpointTokenizer) from a CausalLMTask checkpoint."""
    from race.tasks import CausalLMTask

    checkpoint = torch.load(path, map_location=device, weights_only=False)
    hparams = checkpoint.get("hyper_parameters")
    if hparams is None or "causal_race_temperature" not in hparams:
        raise ValueError(f"{path} is not a causal language model checkpoint (train one with "
                         "python train.py task=lm_wikitext103 or task=lm_ptb)")
    if "tokenizer" not in checkpoint:
        raise ValueError(f"{path} carries no tokenizer: it was saved without the data module; "
                         "save it from a trainer that fits with the LM data module")
    task = CausalLMTask(**hparams)
    task.load_state_dict(checkpoint["state_dict"])
    return task.model.to(device).eval(), CheckpointTokenizer(checkpoint["tokenizer"])


def generate_text(options: GenerateOptions) -> str:
    model, tokenizer = load_checkpoint(options.ckpt, options.device)
    ids = tokenizer.encode(options.prompt)
    if not ids:  # an empty prompt starts from the end-of-text token
        if tokenizer.eos_id is None:
            raise SystemExit("give a prompt: this tokenizer has no end-of-text token to start from")
        ids = [tokenizer.eos_id]
    generator = torch.Generator(device=options.device).manual_seed(options.seed)
    prompt = torch.tensor([ids], dtype=torch.long, device=options.device)  # (1, T)
    out = model.generate(prompt, options.max_new_tokens, temperature=options.temperature,
                         top_k=options.top_k, generator=generator,
                         stop_id=tokenizer.eos_id if options.stop_at_eos else None)
    return tokenizer.decode(out[0].tolist())


def main(argv: list[str] | None = None) -> None:
    options = parse_options(sys.argv[1:] if argv is None else argv)
    print(generate_text(options))


if __name__ == "__main__":
    main()
