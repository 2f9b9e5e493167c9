"""flashattn on NumPy arrays (CPU engine); needs no torch.

Layout (batch, seqlen, heads, head_dim) with any strides whose last dimension is contiguous;
views are read in place, never copied. Dtypes: float32, float16, and bfloat16 from ml_dtypes.
Outputs are new arrays: ``out`` like q (C-contiguous), ``lse`` float32 (batch, heads_q, seqlen_q)
— or (heads_q, total_q) for the varlen forms — the natural log-sum-exp of each row's logits
(-inf for a row that sees no key, whose output is 0).

Masks follow FlashAttention 2: causal and windows are aligned to the bottom-right corner when
seqlen_q != seqlen_k; ``causal=True`` means ``window_size[1] = 0`` (a right window given with it
is ignored, as in FlashAttention 2). Dropout draws its mask from Philox keyed by (seed, offset):
pass the same seed and offset to forward and backward. With ``seed=None`` a seed is drawn from
NumPy's global generator (``np.random.seed`` makes it reproducible).
"""

import numpy as np

from . import _C

__all__ = ["forward", "backward", "varlen_forward", "varlen_backward", "merge_states"]


def _resolve(causal, window_size, dropout_p, seed, offset):
    left, right = int(window_size[0]), int(window_size[1])
    if causal:
        right = 0
    if dropout_p > 0.0 and seed is None:
        seed = int(np.random.randint(0, 2**31 - 1)) << 31 | int(np.random.randint(0, 2**31 - 1))
    return left, right, (0 if seed is None else int(seed)), int(offset)


def _lse_like(q, packed):
    # Shape errors are left to the library, which names the argument; a dummy lse of the right
    # rank keeps it reaching them.
    if packed and q.ndim == 3:
        return np.empty((q.shape[1], q.shape[0]), np.float32)
    if not packed and q.ndim == 4:
        return np.empty((q.shape[0], q.shape[2], q.shape[1]), np.float32)
    return None


def forward(q, k, v, *, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
            alibi_slopes=None, dropout_p=0.0, seed=None, offset=0):
    """Returns (out, lse) for q (B, Sq, Hq, D), k/v (B, Sk, Hkv, D); Hq a multiple of Hkv."""
    left, right, seed, offset = _resolve(causal, window_size, dropout_p, seed, offset)
    out = np.empty(np.shape(q), dtype=getattr(q, "dtype", np.float32))
    lse = _lse_like(out, False)
    _C.forward(q, k, v, out, lse, softmax_scale, causal, left, right, softcap, alibi_slopes,
               dropout_p, seed, offset, 0)
    return out, lse


def _backward_setup(q, k, v, causal, window_size, dropout_p, seed, offset):
    """Resolved options and empty gradients shaped like q, k, v for the backward calls."""
    if dropout_p > 0.0 and seed is None:
        raise ValueError("seed: backward with dropout needs the seed the forward used")
    left, right, seed, offset = _resolve(causal, window_size, dropout_p, seed, offset)
    grads = [np.empty(np.shape(t), dtype=getattr(t, "dtype", np.float32)) for t in (q, k, v)]
    return (left, right, seed, offset, *grads)


def backward(dout, q, k, v, out, lse, *, softmax_scale=None, causal=False, window_size=(-1, -1),
             softcap=0.0, alibi_slopes=None, dropout_p=0.0, seed=None, offset=0,
             deterministic=False):
    """Returns (dq, dk, dv) of ``forward`` with the same options (and the same seed/offset)."""
    left, right, seed, offset, dq, dk, dv = _backward_setup(q, k, v, causal, window_size, dropout_p,
                                                            seed, offset)
    _C.backward(dout, q, k, v, out, lse, dq, dk, dv, softmax_scale, causal, left, right, softcap,
                alibi_slopes, dropout_p, seed, offset, deterministic, 0)
    return dq, dk, dv


def varlen_forward(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, *,
                   softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
                   alibi_slopes=None, dropout_p=0.0, seed=None, offset=0):
    """Packed sequences: q (total_q, Hq, D), k/v (total_k, Hkv, D), int32 cu_seqlens (B + 1).
    Returns (out, lse) with lse (Hq, total_q)."""
    left, right, seed, offset = _resolve(causal, window_size, dropout_p, seed, offset)
    out = np.empty(np.shape(q), dtype=getattr(q, "dtype", np.float32))
    lse = _lse_like(out, True)
    _C.varlen_forward(q, k, v, cu_seqlens_q, cu_seqlens_k, int(max_seqlen_q), int(max_seqlen_k), out,
                      lse, softmax_scale, causal, left, right, softcap, alibi_slopes, dropout_p, seed,
                      offset, 0)
    return out, lse


def varlen_backward(dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                    max_seqlen_k, *, softmax_scale=None, causal=False, window_size=(-1, -1),
                    softcap=0.0, alibi_slopes=None, dropout_p=0.0, seed=None, offset=0,
                    deterministic=False):
    """Returns (dq, dk, dv) of ``varlen_forward``."""
    left, right, seed, offset, dq, dk, dv = _backward_setup(q, k, v, causal, window_size, dropout_p,
                                                            seed, offset)
    _C.varlen_backward(dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, int(max_seqlen_q),
                       int(max_seqlen_k), dq, dk, dv, softmax_scale, causal, left, right, softcap,
                       alibi_slopes, dropout_p, seed, offset, deterministic, 0)
    return dq, dk, dv


def merge_states(o_parts, lse_parts):
    """Combines partial states over disjoint key sets: o_parts (P, B, S, H, D) with lse_parts
    (P, B, H, S) (or the packed (P, T, H, D) / (P, H, T)). Returns (out, lse)."""
    o_parts = o_parts if isinstance(o_parts, np.ndarray) else np.asarray(o_parts)
    out = np.empty(o_parts.shape[1:], dtype=o_parts.dtype)
    lse = np.empty(np.shape(lse_parts)[1:], dtype=np.float32)
    _C.merge_states(o_parts, lse_parts, out, lse, 0)
    return out, lse
