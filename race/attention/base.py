"""The attention contract shared by every method of the registry.

    out = attn(q, k, v, causal=False, key_padding_mask=None)   # (B, H, N, D) -> (B, H, N, D)

b batch, h heads, n sequence length, d head size. key_padding_mask is (B, N) bool with True on
padding (the torch.nn.MultiheadAttention convention). The base class checks shapes and dtypes,
handles reduced precision, then calls `attend` of the method.
"""

from __future__ import annotations

import torch
from torch import nn

HALF_DTYPES = (torch.float16, torch.bfloat16)
SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def keep_mask(key_padding_mask: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """(B, N) True-on-padding mask -> (B, 1, N, 1) multiplier: 1 for real keys, 0 for padding."""
    if key_padding_mask is None:
        return None
    return (~key_padding_mask)[:, None, :, None].to(like.dtype)


class Attention(nn.Module):
    """Base class: validates inputs and runs `attend` in float32 under bf16/fp16.

    Subclasses implement attend(q, k, v, causal, key_padding_mask) on tensors of one dtype, and
    may override decode(q, k, v, cache) for a cheaper one-token step than a key/value cache.
    """

    supports_causal = True
    # Feature maps, exponentials and divisions lose too much in bf16: compute in float32.
    float32_internal = True
    # True where attend itself upcasts half inputs piece by piece (no float32 copy of q, k, v)
    upcasts_itself = False

    def __init__(self, head_dim: int, num_heads: int):
        super().__init__()
        for label, value in (("head_dim", head_dim), ("num_heads", num_heads)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        self.head_dim = head_dim
        self.num_heads = num_heads

    def extra_repr(self) -> str:
        return f"head_dim={self.head_dim}, num_heads={self.num_heads}"

    def forward(self, q, k, v, causal: bool = False, key_padding_mask=None):
        self._check_inputs(q, k, v, key_padding_mask)
        if causal and not self.supports_causal:
            raise ValueError(
                f"{type(self).__name__} cannot be causal: it mixes all positions of the "
                "sequence. Use a causal-capable attention (race, softmax, linear, performer, "
                "angular, sigmoid) or causal=False."
            )
        if self._needs_float32(q) and not self.upcasts_itself:
            with torch.autocast(device_type=q.device.type, enabled=False):
                out = self.attend(q.float(), k.float(), v.float(), causal, key_padding_mask)
            return out.to(q.dtype)
        return self.attend(q, k, v, causal, key_padding_mask)

    def decode_step(self, q, k, v, cache=None):
        """Causal decoding of one new position: q, k, v (B, H, 1, D) -> (out (B, H, 1, D), cache).

        Start a sequence with cache=None and pass the returned cache back at the next position.
        The outputs equal those of forward(..., causal=True) on the whole sequence.
        """
        if not self.supports_causal:
            raise ValueError(f"{type(self).__name__} cannot be causal, so it cannot decode")
        self._check_inputs(q, k, v, None)
        if q.shape[-2] != 1:
            raise ValueError(f"decode_step takes one position (N = 1), got N = {q.shape[-2]}")
        if self._needs_float32(q):
            with torch.autocast(device_type=q.device.type, enabled=False):
                out, cache = self.decode(q.float(), k.float(), v.float(), cache)
            return out.to(q.dtype), cache
        return self.decode(q, k, v, cache)

    def decode(self, q, k, v, cache):
        """Default decoding: a key/value cache that grows with the context, exact attention over it.

        Feature-map methods override this with a constant-size recurrent state.
        """
        if cache is not None:
            k = torch.cat([cache["k"], k], dim=-2)
            v = torch.cat([cache["v"], v], dim=-2)
        return self.attend(q, k, v, False, None), {"k": k, "v": v}

    def _needs_float32(self, q) -> bool:
        autocast_on = torch.is_autocast_enabled(q.device.type)
        return self.float32_internal and (q.dtype in HALF_DTYPES or autocast_on)

    def attend(self, q, k, v, causal, key_padding_mask):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_inputs(self, q, k, v, key_padding_mask):
        for label, t in (("q", q), ("k", k), ("v", v)):
            if not isinstance(t, torch.Tensor) or t.dim() != 4:
                shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
                raise ValueError(
                    f"{label} must be a 4-D tensor (batch, heads, length, head_dim), got {shape}; "
                    "use race.attention.MultiHeadAttention for (batch, length, dim) inputs"
                )
            if t.dtype not in SUPPORTED_DTYPES:
                raise ValueError(
                    f"{label} has dtype {t.dtype}; attention takes float16, bfloat16, float32 "
                    "or float64 (cast with .float())"
                )
        if not (q.shape == k.shape == v.shape):
            raise ValueError(
                f"q, k, v must share one shape (B, H, N, D); got {tuple(q.shape)}, "
                f"{tuple(k.shape)}, {tuple(v.shape)}"
            )
        if not (q.dtype == k.dtype == v.dtype):
            raise ValueError(f"q, k, v must share one dtype; got {q.dtype}, {k.dtype}, {v.dtype}")
        B, H, N, D = q.shape
        if H != self.num_heads or D != self.head_dim:
            raise ValueError(
                f"{type(self).__name__} was built for num_heads={self.num_heads}, "
                f"head_dim={self.head_dim} but got inputs with H={H}, D={D}"
            )
        if N < 1:
            raise ValueError("sequence length must be at least 1")
        if key_padding_mask is not None:
            if key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != (B, N):
                raise ValueError(
                    f"key_padding_mask must be a bool tensor of shape (B, N) = {(B, N)} with "
                    f"True on padding; got {key_padding_mask.dtype} {tuple(key_padding_mask.shape)}"
                )
