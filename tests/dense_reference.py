"""Plain dense float64 definitions of every attention, written independently of race.attention.

Each returns (B, H, N, D) from q, k, v (B, H, N, D). `allowed` is the (B, 1, N, N) bool matrix of
the keys each query may see (padding and causality); rows with no allowed key give zeros.
"""

import itertools
import math

import torch


def allowed_matrix(B, N, causal, key_padding_mask):
    allowed = torch.ones(B, 1, N, N, dtype=torch.bool)
    if key_padding_mask is not None:
        allowed &= ~key_padding_mask[:, None, None, :]
    if causal:
        allowed &= torch.ones(N, N, dtype=torch.bool).tril()
    return allowed


def normalised(weights, v, allowed, eps=0.0):
    weights = weights * allowed
    return (weights @ v) / (weights.sum(-1, keepdim=True) + eps)


def softmax(q, k, v, causal=False, key_padding_mask=None):
    B, H, N, D = q.shape
    allowed = allowed_matrix(B, N, causal, key_padding_mask)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    scores = scores.masked_fill(~allowed, -math.inf)
    return torch.softmax(scores, -1).nan_to_num(0.0) @ v


def linear(q, k, v, causal=False, key_padding_mask=None, eps=1e-6):
    B, H, N, D = q.shape
    phi = lambda x: torch.where(x > 0, x + 1, torch.exp(x))  # noqa: E731  elu(x) + 1
    weights = phi(q) @ phi(k).transpose(-1, -2)
    return normalised(weights, v, allowed_matrix(B, N, causal, key_padding_mask), eps)


def angular(q, k, v, causal=False, key_padding_mask=None, gamma=8):
    B, H, N, D = q.shape
    cos = (q / q.norm(dim=-1, keepdim=True)) @ (k / k.norm(dim=-1, keepdim=True)).transpose(-1, -2)
    weights = (1 - torch.arccos(cos) / math.pi) ** gamma
    return normalised(weights, v, allowed_matrix(B, N, causal, key_padding_mask))


def sigmoid(q, k, v, causal=False, key_padding_mask=None):
    B, H, N, D = q.shape
    weights = torch.sigmoid(q @ k.transpose(-1, -2) / math.sqrt(D) - math.log(N))
    return (weights * allowed_matrix(B, N, causal, key_padding_mask)) @ v


def performer(q, k, v, projection, causal=False, key_padding_mask=None, eps=1e-6):
    """Unstabilised FAVOR+: phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m), x' = x / D**0.25."""
    B, H, N, D = q.shape
    m = projection.shape[0]

    def phi(x):
        x = x / D**0.25
        return torch.exp(x @ projection.T - (x**2).sum(-1, keepdim=True) / 2) / math.sqrt(m)

    weights = phi(q) @ phi(k).transpose(-1, -2)
    return normalised(weights, v, allowed_matrix(B, N, causal, key_padding_mask), eps)


def linformer(q, k, v, key_projection, value_projection, key_padding_mask=None):
    B, H, N, D = q.shape
    if key_padding_mask is not None:
        keep = (~key_padding_mask)[:, None, :, None].to(q.dtype)
        k, v = k * keep, v * keep
    k_proj = torch.einsum("rn,bhnd->bhrd", key_projection[:, :N], k)
    v_proj = torch.einsum("rn,bhnd->bhrd", value_projection[:, :N], v)
    scores = q @ k_proj.transpose(-1, -2) / math.sqrt(D)
    return torch.softmax(scores, -1) @ v_proj


def race_tables(x, planes, tau):
    """List over tables of soft bucket probabilities (B, H, N, R), computed corner by corner."""
    L, P, D = planes.shape
    tables = []
    for l in range(L):
        z = torch.tanh(x @ planes[l].T)  # (B, H, N, P)
        logits = torch.stack(
            [
                (z * torch.tensor(c, dtype=x.dtype)).sum(-1) / tau
                for c in itertools.product((1.0, -1.0), repeat=P)
            ],
            -1,
        )
        tables.append(torch.softmax(logits, -1))
    return tables


def race_paper(q, k, v, planes, tau, causal=False, key_padding_mask=None, eps=1e-6):
    """sum_l phi_l(q)^T B_l / (sum_l phi_l(q)^T A_l + eps) as a dense weight matrix."""
    B, H, N, D = q.shape
    weights = sum(
        fq @ fk.transpose(-1, -2)
        for fq, fk in zip(race_tables(q, planes, tau), race_tables(k, planes, tau))
    )
    return normalised(weights, v, allowed_matrix(B, N, causal, key_padding_mask), eps)


def race_bucket(q, k, v, planes, tau, causal=False, key_padding_mask=None, eps=1e-6):
    """O_t = sum_l sum_r phi_l(q_t)_r B_lr(t) / (A_lr(t) + eps), token by token."""
    B, H, N, D = q.shape
    allowed = allowed_matrix(B, N, causal, key_padding_mask).to(q.dtype)  # (B, 1, N, N)
    out = torch.zeros_like(v)
    for fq, fk in zip(race_tables(q, planes, tau), race_tables(k, planes, tau)):
        for t in range(N):
            seen = allowed[:, :, t, :, None]  # (B, 1, N, 1): keys query t may use
            counts = (fk * seen).sum(-2)  # (B, H, R)
            sums = torch.einsum("bhnr,bhnd->bhrd", fk * seen, v)  # (B, H, R, D)
            means = sums / (counts[..., None] + eps)
            out[:, :, t] += torch.einsum("bhr,bhrd->bhd", fq[:, :, t], means)
    return out
