"""Checks of a composed run config that fail before any data is generated, read or trained on.

check_config(cfg) raises ValueError with the fix in the message for: a key that the object it
configures does not take (trainer, data, module, callbacks, logger: the valid keys are listed),
an attention or option the registry does not know (race.attention.build_attention lists them),
an attention that cannot be causal on a causal task (Linformer on a language model), data
longer than a position table (data.max_length or attn.max_seq_len against data.seq_len), an
image patch size that does not divide the image, and unknown values of the run's own options.

explain_unknown_override(conf_dir, overrides) is for the command line: Hydra rejects a
misspelled key (`attn.hyperplane=4`) without saying which keys exist; this names them.
"""

from __future__ import annotations

import difflib
import inspect
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from race.attention import ATTENTION, attention_options, available_attention, build_attention
from race.tasks.classification import split_attention

NONFINITE_ACTIONS = ("stop", "skip")  # race.tasks.guards.NONFINITE_ACTIONS (not imported:
EVAL_CHECKPOINTS = ("best", "last")  # this module stays importable without Lightning)
# groups whose entries are objects built by hydra.utils.instantiate from their keys
INSTANTIATED = ("trainer", "data")
INSTANTIATED_GROUPS = ("callbacks", "logger")
# keys train.py passes to the task module itself (not from cfg.module)
MODULE_ARGUMENTS = ("model", "attention", "vocab_size", "seq_len", "num_classes", "pad_id",
                    "pixel_dim")


def check_config(cfg: DictConfig) -> None:
    """Raise ValueError on the first problem of the run config `cfg` (see the module doc)."""
    check_run_options(cfg)
    for key in INSTANTIATED:
        if cfg.get(key) is not None:
            check_target_keys(cfg[key], key)
    if cfg.get("module") is not None:
        check_target_keys(cfg.module, "module", passed_by_train=MODULE_ARGUMENTS)
    for group in INSTANTIATED_GROUPS:
        for name, entry in (cfg.get(group) or {}).items():
            if entry is not None and "_target_" in entry:
                check_target_keys(entry, f"{group}.{name}")
    check_attention(cfg)
    check_causal(cfg)
    check_lengths(cfg)
    check_patches(cfg)


def check_run_options(cfg: DictConfig) -> None:
    if cfg.get("nonfinite", "stop") not in NONFINITE_ACTIONS:
        raise ValueError(f"nonfinite={cfg.nonfinite!r} is not an action; choose one of: "
                         f"{', '.join(NONFINITE_ACTIONS)}")
    if cfg.get("eval_ckpt", "best") not in EVAL_CHECKPOINTS:
        raise ValueError(f"eval_ckpt={cfg.eval_ckpt!r} is not a checkpoint choice; choose one "
                         f"of: {', '.join(EVAL_CHECKPOINTS)}")
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None and not Path(ckpt_path).is_file():
        raise ValueError(f"ckpt_path={ckpt_path} does not exist: give a checkpoint file, e.g. "
                         "<run folder>/checkpoints/last.ckpt")


def accepted_keys(target: str) -> set[str] | None:
    """The keyword arguments the class or function `target` takes; None if it takes **kwargs."""
    obj = hydra.utils.get_class(target) if "." in target else None
    parameters = inspect.signature(obj).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return {name for name, p in parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and name != "self"}


def check_target_keys(node: DictConfig, where: str, passed_by_train=()) -> None:
    """Every key of an instantiated config node must be an argument of its _target_."""
    target = node.get("_target_")
    if target is None:
        return
    try:
        accepted = accepted_keys(target)
    except Exception as error:  # the import fails: say which target, not a Hydra traceback
        raise ValueError(f"{where}._target_={target} cannot be imported ({error})") from error
    if accepted is None:
        return
    given = {key for key in node if not str(key).startswith("_")}
    unknown = sorted(given - accepted)
    if unknown:
        valid = sorted(accepted - set(passed_by_train))
        hints = [f"{key} (did you mean {', '.join(close)}?)" if close else key
                 for key in unknown
                 for close in [difflib.get_close_matches(key, valid, n=2)]]
        raise ValueError(f"{where} ({target}) does not take {', '.join(hints)}; "
                         f"valid keys: {', '.join(valid)}")


def attention_of(cfg: DictConfig) -> tuple[str, dict]:
    """(name, options) of the run's attention, as the model will build it."""
    name, options = split_attention(OmegaConf.to_container(cfg.attn, resolve=True))
    if name in ATTENTION and "max_seq_len" in attention_options(name):
        if options.get("max_seq_len") is None:  # the model gives it its own length
            options["max_seq_len"] = int((cfg.get("data") or {}).get("seq_len") or 1)
    return name, options


def check_attention(cfg: DictConfig) -> None:
    """An unknown attention or option raises here, with the available ones listed."""
    name, options = attention_of(cfg)
    heads = int(cfg.model.heads)
    if int(cfg.model.dim) % heads:
        raise ValueError(f"model.dim={cfg.model.dim} must be divisible by model.heads={heads}")
    build_attention(name, head_dim=int(cfg.model.dim) // heads, num_heads=heads, **options)


def task_is_causal(cfg: DictConfig) -> bool:
    target = cfg.get("module", {}).get("_target_")
    return bool(target) and bool(getattr(hydra.utils.get_class(target), "causal", False))


def check_causal(cfg: DictConfig) -> None:
    name, options = attention_of(cfg)
    if not task_is_causal(cfg):
        return
    heads = int(cfg.model.heads)
    attention = build_attention(name, head_dim=int(cfg.model.dim) // heads, num_heads=heads,
                                **options)
    if not attention.supports_causal:
        capable = [n for n in available_attention()
                   if build_attention(n, head_dim=8, num_heads=1,
                                      **({"max_seq_len": 8} if n == "linformer" else {}))
                   .supports_causal]
        raise ValueError(f"attn={name} cannot be causal (it mixes all positions of the "
                         f"sequence), and task={cfg.get('task_name')} is a causal language "
                         f"model: choose attn= one of {', '.join(capable)}")


def check_lengths(cfg: DictConfig) -> None:
    """Sequences longer than a position table fail at the first batch; catch them here."""
    data = cfg.get("data") or {}
    seq_len = data.get("seq_len")
    if seq_len is None:
        return
    max_length = data.get("max_length")
    if max_length is not None and int(max_length) > int(seq_len) + 1:
        # generated lengths are < max_length, so max_length = seq_len + 1 still fits
        raise ValueError(f"data.max_length={max_length} generates sequences longer than "
                         f"data.seq_len={seq_len}, the model's position table: lower "
                         "data.max_length or raise data.seq_len")
    name, options = attention_of(cfg)
    table = options.get("max_seq_len")
    if name == "linformer" and table is not None and int(table) < int(seq_len):
        raise ValueError(f"attn.max_seq_len={table} (Linformer's projection length) is below "
                         f"data.seq_len={seq_len}: set attn.max_seq_len>={seq_len} (the default "
                         "follows data.seq_len)")


def check_patches(cfg: DictConfig) -> None:
    data = cfg.get("data") or {}
    image_size, patch_size = data.get("image_size"), data.get("patch_size")
    if patch_size is None:
        return
    if int(patch_size) < 1:
        raise ValueError(f"data.patch_size={patch_size} must be a positive integer")
    if image_size is not None and int(image_size) % int(patch_size):
        divisors = [p for p in range(1, int(image_size) + 1) if int(image_size) % p == 0]
        raise ValueError(f"data.patch_size={patch_size} does not divide data.image_size="
                         f"{image_size}: choose a patch size in {divisors[:12]}")


# the command line


def explain_unknown_override(conf_dir: str | Path, config_name: str,
                             overrides: list[str]) -> str | None:
    """For the first `key.path=value` override whose key is not in the composed config, a line
    listing the keys that exist there (Hydra's own error does not); None if there is none."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception:  # a syntax error: Hydra's message already points at it
        return None
    conf_dir = Path(conf_dir)
    # group choices (attn=race) decide which keys exist; plain keys are checked against them
    groups, keys = [], []
    for override, text in zip(parsed, overrides):
        key = override.key_or_group
        if override.is_add() or override.is_force_add() or override.is_delete():
            continue
        if (conf_dir / key).is_dir() or key.startswith("hydra/"):
            groups.append(text)
        elif not key.startswith("hydra."):
            keys.append(key)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir.resolve()), version_base="1.3"):
            cfg = compose(config_name, overrides=groups)
    except Exception:  # an unknown group choice: Hydra's message lists the options
        return None
    finally:
        GlobalHydra.instance().clear()
    for key in keys:
        parent_path, _, leaf = key.rpartition(".")
        parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
        if not isinstance(parent, DictConfig) or leaf in parent:
            continue
        valid = sorted(str(k) for k in parent.keys())
        close = difflib.get_close_matches(leaf, valid, n=3)
        hint = f" Did you mean {', '.join(f'{parent_path}.{c}' for c in close)}?" if close else ""
        where = parent_path or "the top level"
        extra = (f" Attention options of {cfg.attn.name}: "
                 f"{', '.join(attention_options(cfg.attn.name))}." if parent_path == "attn"
                 else "")
        return (f"Unknown config key '{key}'.{hint} Valid keys under {where}: "
                f"{', '.join(valid)}.{extra} (+{key}=... adds a new key.)")
    return None
