"""Text tokenizers for the paper's non-LRA tasks, behind one small interface.

Kinds (``choose_tokenizer(kind, ...)``):
    gpt2       GPT-2 byte-level BPE read from local files (tokenizer.json, or vocab.json +
               merges.txt, or the Hugging Face cache); nothing is ever downloaded.
    bytes      UTF-8 bytes, 256 ids after 5 specials.
    wordpiece  BERT WordPiece from a local vocab.txt / tokenizer.json, else trained locally
               with `tokenizers` on the training split.
    word       word-level vocabulary of the N most frequent (lower-cased) words, trained
               locally with `tokenizers` (WordLevel).

Id convention of the suite: pad is 0 in every kind. Kinds we build ourselves (bytes and the
trained ones) use [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3 [MASK]=4, then the regular tokens. A file
tokenizer keeps its own ids when its pad token already sits at 0 (BERT's vocab.txt: [PAD]=0,
[UNK]=100, [CLS]=101, [SEP]=102, [MASK]=103); otherwise (GPT-2) every id is shifted by one so
that 0 is free for padding: GPT-2's <|endoftext|> 50256 becomes 50257, vocab_size 50258.

Every tokenizer has a `fingerprint` (kind + hash of its full serialisation: vocabulary, merges,
normaliser, id offset) that the tokenised-split caches put in their keys, so a changed
tokenizer never reuses a stale cache.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

KINDS = ("gpt2", "bytes", "wordpiece", "word")
# what each kind does when its files are missing, unless `fallback` says otherwise
DEFAULT_FALLBACK = {"gpt2": "bytes", "wordpiece": "train", "word": "train", "bytes": "error"}
FALLBACKS = ("bytes", "train", "error")
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4 in our own kinds
DEFAULT_VOCAB_SIZE = {"wordpiece": 30522, "word": 50000}  # BERT's size; the paper's 50K words
# Checked in the local Hugging Face cache only (try_to_load_from_cache never downloads).
HUB_TOKENIZER_REPOS = {
    "gpt2": ("openai-community/gpt2", "gpt2"),
    "wordpiece": ("google-bert/bert-base-uncased", "bert-base-uncased"),
}


class TokenizerUnavailableError(FileNotFoundError):
    """The tokenizer's files are missing and the configured fallback is 'error'."""


# the tokenizer every data module uses


class TextTokenizer:
    """Text -> numpy id arrays; pad id 0; special ids as attributes (None where a kind lacks one).

    Wraps a `tokenizers.Tokenizer` (or nothing, for bytes) plus an id offset.
    """

    def __init__(self, kind: str, backend, *, offset: int, specials: dict[str, int | None],
                 vocab_size: int, description: str):
        self.kind = kind
        self.backend = backend
        self.offset = offset
        self.vocab_size = vocab_size  # embedding table size (a trained one may use fewer ids)
        self.num_tokens = vocab_size  # ids actually in use: 0 .. num_tokens - 1
        self.description = description
        self.pad_id = 0
        self.unk_id = specials.get("unk")
        self.cls_id = specials.get("cls")
        self.sep_id = specials.get("sep")
        self.mask_id = specials.get("mask")
        # end of document for language modelling: GPT-2's <|endoftext|>, [SEP] elsewhere
        self.eos_id = specials.get("eos", self.sep_id)
        serialised = backend.to_str() if backend is not None else "utf-8 bytes v1"
        digest = hashlib.sha256(f"{kind}|{offset}|{serialised}".encode()).hexdigest()
        self.fingerprint = f"{kind}-{digest[:12]}"

    @property
    def special_ids(self) -> list[int]:
        """Ids that are never masked nor used as random MLM replacements."""
        ids = {self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id, self.eos_id}
        if self.backend is not None:
            for token in SPECIAL_TOKENS + ("<|endoftext|>",):
                token_id = self.backend.token_to_id(token)
                if token_id is not None:
                    ids.add(token_id + self.offset)
        return sorted(i for i in ids if i is not None)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """Token ids of each text, without any added special tokens."""
        if self.backend is None:
            return [np.frombuffer(t.encode("utf-8"), dtype=np.uint8).astype(np.int64)
                    + self.offset for t in texts]
        # encode_batch_fast (tokenizers >= 0.20) skips the character offsets we do not use
        encode = getattr(self.backend, "encode_batch_fast", self.backend.encode_batch)
        encodings = encode(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) + self.offset for e in encodings]

    def encode(self, text: str) -> np.ndarray:
        return self.encode_batch([text])[0]

    def __repr__(self) -> str:
        return f"TextTokenizer({self.description}, vocab_size={self.vocab_size})"


# building blocks


def bytes_tokenizer() -> TextTokenizer:
    specials = {name: i for i, name in enumerate(("pad", "unk", "cls", "sep", "mask"))}
    return TextTokenizer("bytes", None, offset=len(SPECIAL_TOKENS), specials=specials,
                         vocab_size=len(SPECIAL_TOKENS) + 256, description="utf-8 bytes")


def wrap_backend(kind: str, backend, description: str) -> TextTokenizer:
    """Wrap a `tokenizers.Tokenizer`, shifting its ids by one unless its pad token is id 0."""
    # A tokenizer.json may carry padding/truncation settings; the data modules do their own.
    backend.no_padding()
    backend.no_truncation()
    pad_at_zero = any(backend.token_to_id(t) == 0 for t in ("[PAD]", "<pad>"))
    offset = 0 if pad_at_zero else 1

    def shifted(*tokens):
        for token in tokens:
            token_id = backend.token_to_id(token)
            if token_id is not None:
                return token_id + offset
        return None

    specials = {
        "unk": shifted("[UNK]", "<unk>"),
        "cls": shifted("[CLS]", "<s>"),
        "sep": shifted("[SEP]", "</s>", "<|endoftext|>"),
        "mask": shifted("[MASK]", "<mask>"),
        "eos": shifted("<|endoftext|>", "[SEP]", "</s>"),
    }
    vocab_size = backend.get_vocab_size(with_added_tokens=True) + offset
    return TextTokenizer(kind, backend, offset=offset, specials=specials,
                         vocab_size=vocab_size, description=description)


def gpt2_backend_from_files(vocab_json: Path, merges_txt: Path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    backend = Tokenizer(models.BPE.from_file(str(vocab_json), str(merges_txt)))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)  # as GPT-2
    backend.decoder = decoders.ByteLevel()
    return backend


def wordpiece_backend_from_vocab(vocab_txt: Path):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab = vocab_txt.read_text(encoding="utf-8").split("\n")
    # An uncased BERT vocabulary has no capitalised words; lower-case the text to match it.
    lowercase = "The" not in vocab
    backend = Tokenizer(models.WordPiece.from_file(str(vocab_txt), unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    return backend


def untrained_backend(kind: str, vocab_size: int):
    """A fresh WordPiece / WordLevel pipeline and its trainer (specials first: ids 0..4)."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if kind == "wordpiece":
        backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        backend.normalizer = normalizers.BertNormalizer(lowercase=True)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=list(
            SPECIAL_TOKENS), show_progress=False)
    else:  # word
        backend = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        backend.normalizer = normalizers.BertNormalizer(lowercase=True)
        # words and punctuation marks; everything outside the top-N becomes [UNK]
        backend.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=list(
            SPECIAL_TOKENS), show_progress=False)
    return backend, trainer


def find_local_files(kind: str, path: str | Path | None) -> dict[str, Path] | None:
    """Locate a kind's files in `path` (a file or a directory) or in the local HF cache."""
    candidates: list[Path] = []
    if path is not None:
        path = Path(path).expanduser()
        if not path.exists():
            raise TokenizerUnavailableError(
                f"tokenizer path {path} does not exist; set data.tokenizer_path to a "
                f"tokenizer.json file or to a directory holding the {kind} tokenizer files")
        candidates.append(path)
    elif kind in HUB_TOKENIZER_REPOS:
        from huggingface_hub import try_to_load_from_cache

        for repo in HUB_TOKENIZER_REPOS[kind]:
            cached = try_to_load_from_cache(repo, "tokenizer.json")
            if isinstance(cached, str):
                candidates.append(Path(cached))
    for candidate in candidates:
        if candidate.is_file():
            return {"tokenizer.json": candidate}
        if (candidate / "tokenizer.json").is_file():
            return {"tokenizer.json": candidate / "tokenizer.json"}
        if kind == "gpt2" and (candidate / "vocab.json").is_file() \
                and (candidate / "merges.txt").is_file():
            return {"vocab.json": candidate / "vocab.json", "merges.txt": candidate / "merges.txt"}
        if kind == "wordpiece" and (candidate / "vocab.txt").is_file():
            return {"vocab.txt": candidate / "vocab.txt"}
    if path is not None:
        wanted = {"gpt2": "tokenizer.json or vocab.json + merges.txt",
                  "wordpiece": "tokenizer.json or vocab.txt"}.get(kind, "tokenizer.json")
        raise TokenizerUnavailableError(
            f"no {kind} tokenizer files in {path}: expected {wanted}")
    return None


# the factory


@dataclass(frozen=True)
class TokenizerRecipe:
    """What will be built: known right away (so data modules know vocab_size in __init__),
    built later, after the training split is available for the trained kinds."""

    kind: str
    files: dict[str, Path] | None  # None: bytes, or trained locally
    vocab_size: int
    description: str

    @property
    def needs_training(self) -> bool:
        return self.files is None and self.kind in ("wordpiece", "word")

    def build(self, train_texts: Callable[[], Iterable[str]] | None = None) -> TextTokenizer:
        """The tokenizer. Trained kinds call `train_texts()` for the training corpus; callers
        cache the result (race.data.tokenized_splits.build_tokenizer) and reload it with
        `from_json`."""
        from tokenizers import Tokenizer

        if self.kind == "bytes":
            return bytes_tokenizer()
        if self.files is not None:
            if "tokenizer.json" in self.files:
                backend = Tokenizer.from_file(str(self.files["tokenizer.json"]))
            elif self.kind == "gpt2":
                backend = gpt2_backend_from_files(self.files["vocab.json"],
                                                  self.files["merges.txt"])
            else:
                backend = wordpiece_backend_from_vocab(self.files["vocab.txt"])
            return wrap_backend(self.kind, backend, self.description)
        if train_texts is None:
            raise ValueError(f"the {self.kind} tokenizer must be trained: pass train_texts")
        backend, trainer = untrained_backend(self.kind, self.vocab_size)
        backend.train_from_iterator(_batched(train_texts()), trainer=trainer)
        return self.from_json(backend.to_str())

    def from_json(self, serialised: str) -> TextTokenizer:
        """A trained tokenizer back from its `tokenizers` JSON."""
        from tokenizers import Tokenizer

        tokenizer = wrap_backend(self.kind, Tokenizer.from_str(serialised), self.description)
        if tokenizer.vocab_size > self.vocab_size:
            raise ValueError(f"trained tokenizer has {tokenizer.vocab_size} tokens, more than "
                             f"the {self.vocab_size} the recipe promised")
        # A small corpus may yield fewer tokens; the embedding table keeps the promised size.
        tokenizer.num_tokens = tokenizer.vocab_size
        tokenizer.vocab_size = self.vocab_size
        return tokenizer


def choose_tokenizer(kind: str, *, path: str | Path | None = None, vocab_size: int | None = None,
                     fallback: str | None = None) -> TokenizerRecipe:
    """Decide which tokenizer a task will use, applying the fallback when files are missing.

    fallback: 'bytes' (use the byte-level tokenizer), 'train' (train the kind locally on the
    training split; wordpiece and word only), 'error' (raise). Default per kind: gpt2 -> bytes,
    wordpiece/word -> train.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown tokenizer {kind!r}; choose one of {', '.join(KINDS)}")
    fallback = fallback or DEFAULT_FALLBACK[kind]
    if fallback not in FALLBACKS:
        raise ValueError(f"unknown tokenizer fallback {fallback!r}; choose one of "
                         f"{', '.join(FALLBACKS)}")
    if kind == "bytes":
        return TokenizerRecipe("bytes", None, len(SPECIAL_TOKENS) + 256, "utf-8 bytes")
    files = find_local_files(kind, path)
    if files is not None:
        recipe = TokenizerRecipe(kind, files, 0, f"{kind} from {_describe(files)}")
        return TokenizerRecipe(kind, files, recipe.build().vocab_size, recipe.description)
    where = ("set data.tokenizer_path to a directory holding tokenizer.json or vocab.json + "
             "merges.txt (e.g. a local copy of the hub's openai-community/gpt2)"
             if kind == "gpt2" else
             "set data.tokenizer_path to a directory holding vocab.txt or tokenizer.json "
             "(e.g. a local copy of google-bert/bert-base-uncased)"
             if kind == "wordpiece" else "set data.tokenizer_path to a tokenizer.json")
    if fallback == "error" or (fallback == "train" and kind == "gpt2"):
        raise TokenizerUnavailableError(
            f"no local {kind} tokenizer files and downloading is not possible here: {where}, "
            f"or set data.tokenizer_fallback=bytes" + (" or train" if kind != "gpt2" else ""))
    if fallback == "bytes":
        log.warning("no local %s tokenizer files: using the byte-level tokenizer instead "
                    "(results are per byte, not comparable with the paper's %s numbers). "
                    "To use %s: %s.", kind, kind, kind, where)
        return TokenizerRecipe("bytes", None, len(SPECIAL_TOKENS) + 256, "utf-8 bytes")
    size = vocab_size or DEFAULT_VOCAB_SIZE[kind]
    if kind == "wordpiece":
        log.warning("no local WordPiece vocabulary: using one of %d tokens trained on the "
                    "training split (once; cached under data_dir/tokenizers). To use BERT's: "
                    "%s.", size, where)
    return TokenizerRecipe(kind, None, size, f"{kind} trained locally ({size} tokens)")


def _describe(files: dict[str, Path]) -> str:
    return " + ".join(str(p) for p in files.values())


def _batched(texts: Iterable[str], size: int = 1000) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
