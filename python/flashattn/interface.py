"""PyTorch interface: the FlashAttention-2 functions and an SDPA drop-in, on CPU and CUDA tensors.

Layout (batch, seqlen, heads, head_dim) for the flash_attn_* functions; (batch, heads, seqlen,
head_dim) for ``sdpa``. Any strides with a contiguous last dimension are read in place: views
(transposes, slices of packed qkv) are never copied. Outputs are allocated by torch
(``torch.empty_like(q)``, so a transposed input gives an output with the same memory order), on
the current CUDA stream.

Three paths, one implementation:
- eager without autograd: the binding is called directly (lowest overhead);
- eager with autograd: a ``torch.autograd.Function`` whose backward calls the backward binding;
- inside ``torch.compile``: the custom ops ``torch.ops.flashattn.fwd`` / ``bwd`` (and ``varlen_*``),
  with fake (meta) implementations and registered autograd, so graphs need no break.

Differences from FlashAttention 2, on purpose:
- ``return_attn_probs=True`` returns ``(out, softmax_lse, None)``: the dropout/probability matrix
  S_dmask is never materialised (the library keeps memory O(N)).
- Dropout: the Philox seed is drawn from torch's default (CPU) generator on each call, so
  ``torch.manual_seed`` makes runs reproducible on every device; backward reuses the same seed.
- A last dimension that is not contiguous raises ValueError instead of being copied.
"""

from typing import Optional, Tuple

import torch
from torch import Tensor

from . import _C

__all__ = [
    "flash_attn_func",
    "flash_attn_varlen_func",
    "flash_attn_qkvpacked_func",
    "flash_attn_kvpacked_func",
    "flash_attn_varlen_qkvpacked_func",
    "flash_attn_varlen_kvpacked_func",
    "sdpa",
    "use_torch_allocator",
]

_F32 = torch.float32
_raw_stream = getattr(torch._C, "_cuda_getCurrentRawStream", None)
_is_compiling = torch.compiler.is_compiling


# ----------------------------------------------------------------------------- CUDA plumbing

_cuda_ready = False
_torch_allocator_wanted = True


def _torch_alloc(nbytes, device, stream):
    return torch.cuda.caching_allocator_alloc(nbytes, device, stream)


def _torch_free(ptr, device, stream):
    torch.cuda.caching_allocator_delete(ptr)


def use_torch_allocator(enable: bool = True) -> None:
    """Route the library's CUDA scratch (e.g. the backward's fp32 dQ accumulator) through torch's
    caching allocator (the default once a CUDA tensor is seen), or back to cudaMallocAsync."""
    global _torch_allocator_wanted
    _torch_allocator_wanted = bool(enable)
    if enable and _cuda_ready:
        _C.set_device_allocator(_torch_alloc, _torch_free)
    elif not enable:
        _C.set_device_allocator(None, None)


def _cuda_setup():
    global _cuda_ready
    _cuda_ready = True
    if _torch_allocator_wanted:
        _C.set_device_allocator(_torch_alloc, _torch_free)


def _stream(t: Tensor) -> int:
    if not t.is_cuda:
        return 0
    if not _cuda_ready:
        _cuda_setup()
    dev = t.get_device()
    if _raw_stream is not None:
        return _raw_stream(dev)
    return torch.cuda.current_stream(dev).cuda_stream


def _draw_rng() -> Tensor:
    # [seed, offset] from torch's default generator: reproducible under torch.manual_seed.
    return torch.randint(0, 2**62, (2,), dtype=torch.int64)


def _seed_offset(rng: Optional[Tensor]) -> Tuple[int, int]:
    if rng is None:
        return 0, 0
    seed, offset = rng.tolist()
    return seed, offset


def _bad_rank(name: str, t: Tensor, want: str):
    return ValueError(f"{name}: expected {want}, got shape {tuple(t.shape)}")


# ----------------------------------------------------------------------------- implementations

def _fwd_impl(q, k, v, softmax_scale, causal, wl, wr, softcap, alibi, dropout_p, rng, need_lse=True):
    try:
        b, sq, h, _ = q.shape
    except ValueError:
        raise _bad_rank("q", q, "4 dimensions (batch, seqlen, heads, head_dim)") from None
    out = torch.empty_like(q)
    lse = q.new_empty((b, h, sq), dtype=_F32) if need_lse else None
    seed, offset = (0, 0) if rng is None else rng.tolist()
    # The library makes q's GPU current for the call itself; only the stream comes from torch.
    _C.forward(q, k, v, out, lse, softmax_scale, causal, wl, wr, softcap, alibi, dropout_p, seed,
               offset, _stream(q) if q.is_cuda else 0)
    return out, lse


def _contiguous_grad(dout: Tensor) -> Tensor:
    # Upstream gradients may be expanded (stride 0, e.g. from .sum()); the kernels need a
    # contiguous last dimension. This is the only copy the package makes, and only then.
    return dout if dout.stride(-1) == 1 else dout.contiguous()


def _bwd_impl(dout, q, k, v, out, lse, softmax_scale, causal, wl, wr, softcap, alibi, dropout_p,
              rng, deterministic):
    dout = _contiguous_grad(dout)
    dq = torch.empty_like(q)
    dk = torch.empty_like(k)
    dv = torch.empty_like(v)
    seed, offset = _seed_offset(rng)
    _C.backward(dout, q, k, v, out, lse, dq, dk, dv, softmax_scale, causal, wl, wr, softcap,
                alibi, dropout_p, seed, offset, deterministic, _stream(q))
    return dq, dk, dv


def _varlen_fwd_impl(q, k, v, cu_q, cu_k, max_q, max_k, softmax_scale, causal, wl, wr, softcap,
                     alibi, dropout_p, rng):
    try:
        t, h, _ = q.shape
    except ValueError:
        raise _bad_rank("q", q, "3 dimensions (total_q, heads, head_dim)") from None
    out = torch.empty_like(q)
    lse = q.new_empty((h, t), dtype=_F32)
    seed, offset = _seed_offset(rng)
    _C.varlen_forward(q, k, v, cu_q, cu_k, max_q, max_k, out, lse, softmax_scale, causal, wl,
                      wr, softcap, alibi, dropout_p, seed, offset, _stream(q))
    return out, lse


def _varlen_bwd_impl(dout, q, k, v, out, lse, cu_q, cu_k, max_q, max_k, softmax_scale, causal, wl,
                     wr, softcap, alibi, dropout_p, rng, deterministic):
    dout = _contiguous_grad(dout)
    dq = torch.empty_like(q)
    dk = torch.empty_like(k)
    dv = torch.empty_like(v)
    seed, offset = _seed_offset(rng)
    _C.varlen_backward(dout, q, k, v, out, lse, cu_q, cu_k, max_q, max_k, dq, dk, dv,
                       softmax_scale, causal, wl, wr, softcap, alibi, dropout_p, seed, offset,
                       deterministic, _stream(q))
    return dq, dk, dv


# ----------------------------------------------------------------------------- eager autograd

class _FlashAttnFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, softmax_scale, causal, wl, wr, softcap, alibi, dropout_p, rng,
                deterministic):
        out, lse = _fwd_impl(q, k, v, softmax_scale, causal, wl, wr, softcap, alibi, dropout_p, rng)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.opts = (softmax_scale, causal, wl, wr, softcap, alibi, dropout_p, rng, deterministic)
        ctx.mark_non_differentiable(lse)
        ctx.set_materialize_grads(False)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse = ctx.saved_tensors
        if dout is None:
            dout = torch.zeros_like(out)
        dq, dk, dv = _bwd_impl(dout, q, k, v, out, lse, *ctx.opts)
        return dq, dk, dv, None, None, None, None, None, None, None, None, None


class _FlashAttnVarlenFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, cu_q, cu_k, max_q, max_k, softmax_scale, causal, wl, wr, softcap,
                alibi, dropout_p, rng, deterministic):
        out, lse = _varlen_fwd_impl(q, k, v, cu_q, cu_k, max_q, max_k, softmax_scale, causal, wl,
                                    wr, softcap, alibi, dropout_p, rng)
        ctx.save_for_backward(q, k, v, out, lse, cu_q, cu_k)
        ctx.opts = (max_q, max_k, softmax_scale, causal, wl, wr, softcap, alibi, dropout_p, rng,
                    deterministic)
        ctx.mark_non_differentiable(lse)
        ctx.set_materialize_grads(False)
        return out, lse

    @staticmethod
    def backward(ctx, dout, _dlse):
        q, k, v, out, lse, cu_q, cu_k = ctx.saved_tensors
        if dout is None:
            dout = torch.zeros_like(out)
        dq, dk, dv = _varlen_bwd_impl(dout, q, k, v, out, lse, cu_q, cu_k, *ctx.opts)
        return (dq, dk, dv) + (None,) * 13


# ----------------------------------------------------------------------------- custom ops

@torch.library.custom_op("flashattn::fwd", mutates_args=())
def _fwd_op(q: Tensor, k: Tensor, v: Tensor, softmax_scale: Optional[float], causal: bool,
            window_left: int, window_right: int, softcap: float, alibi_slopes: Optional[Tensor],
            dropout_p: float, rng_state: Optional[Tensor], deterministic: bool
            ) -> Tuple[Tensor, Tensor]:
    return _fwd_impl(q, k, v, softmax_scale, causal, window_left, window_right, softcap,
                     alibi_slopes, dropout_p, rng_state)


@_fwd_op.register_fake
def _fwd_fake(q, k, v, softmax_scale, causal, window_left, window_right, softcap, alibi_slopes,
              dropout_p, rng_state, deterministic):
    b, sq, h, _ = q.shape
    return torch.empty_like(q), q.new_empty((b, h, sq), dtype=_F32)


@torch.library.custom_op("flashattn::bwd", mutates_args=())
def _bwd_op(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
            softmax_scale: Optional[float], causal: bool, window_left: int, window_right: int,
            softcap: float, alibi_slopes: Optional[Tensor], dropout_p: float,
            rng_state: Optional[Tensor], deterministic: bool) -> Tuple[Tensor, Tensor, Tensor]:
    return _bwd_impl(dout, q, k, v, out, lse, softmax_scale, causal, window_left, window_right,
                     softcap, alibi_slopes, dropout_p, rng_state, deterministic)


@_bwd_op.register_fake
def _bwd_fake(dout, q, k, v, *args):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _fwd_setup_context(ctx, inputs, output):
    q, k, v, scale, causal, wl, wr, softcap, alibi, dropout_p, rng, deterministic = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, alibi, rng)
    ctx.opts = (scale, causal, wl, wr, softcap, dropout_p, deterministic)


def _fwd_backward(ctx, dout, _dlse):
    q, k, v, out, lse, alibi, rng = ctx.saved_tensors
    scale, causal, wl, wr, softcap, dropout_p, deterministic = ctx.opts
    dq, dk, dv = torch.ops.flashattn.bwd(_contiguous_grad(dout), q, k, v, out, lse, scale, causal,
                                         wl, wr, softcap, alibi, dropout_p, rng, deterministic)
    return dq, dk, dv, None, None, None, None, None, None, None, None, None


torch.library.register_autograd("flashattn::fwd", _fwd_backward, setup_context=_fwd_setup_context)


@torch.library.custom_op("flashattn::varlen_fwd", mutates_args=())
def _varlen_fwd_op(q: Tensor, k: Tensor, v: Tensor, cu_seqlens_q: Tensor, cu_seqlens_k: Tensor,
                   max_seqlen_q: int, max_seqlen_k: int, softmax_scale: Optional[float],
                   causal: bool, window_left: int, window_right: int, softcap: float,
                   alibi_slopes: Optional[Tensor], dropout_p: float, rng_state: Optional[Tensor],
                   deterministic: bool) -> Tuple[Tensor, Tensor]:
    return _varlen_fwd_impl(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                            softmax_scale, causal, window_left, window_right, softcap,
                            alibi_slopes, dropout_p, rng_state)


@_varlen_fwd_op.register_fake
def _varlen_fwd_fake(q, k, v, *args):
    t, h, _ = q.shape
    return torch.empty_like(q), q.new_empty((h, t), dtype=_F32)


@torch.library.custom_op("flashattn::varlen_bwd", mutates_args=())
def _varlen_bwd_op(dout: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
                   cu_seqlens_q: Tensor, cu_seqlens_k: Tensor, max_seqlen_q: int,
                   max_seqlen_k: int, softmax_scale: Optional[float], causal: bool,
                   window_left: int, window_right: int, softcap: float,
                   alibi_slopes: Optional[Tensor], dropout_p: float, rng_state: Optional[Tensor],
                   deterministic: bool) -> Tuple[Tensor, Tensor, Tensor]:
    return _varlen_bwd_impl(dout, q, k, v, out, lse, cu_seqlens_q, cu_seqlens_k, max_seqlen_q,
                            max_seqlen_k, softmax_scale, causal, window_left, window_right,
                            softcap, alibi_slopes, dropout_p, rng_state, deterministic)


@_varlen_bwd_op.register_fake
def _varlen_bwd_fake(dout, q, k, v, *args):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _varlen_setup_context(ctx, inputs, output):
    (q, k, v, cu_q, cu_k, max_q, max_k, scale, causal, wl, wr, softcap, alibi, dropout_p, rng,
     deterministic) = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, cu_q, cu_k, alibi, rng)
    ctx.opts = (max_q, max_k, scale, causal, wl, wr, softcap, dropout_p, deterministic)


def _varlen_backward(ctx, dout, _dlse):
    q, k, v, out, lse, cu_q, cu_k, alibi, rng = ctx.saved_tensors
    max_q, max_k, scale, causal, wl, wr, softcap, dropout_p, deterministic = ctx.opts
    dq, dk, dv = torch.ops.flashattn.varlen_bwd(
        _contiguous_grad(dout), q, k, v, out, lse, cu_q, cu_k, max_q, max_k, scale, causal, wl, wr,
        softcap, alibi, dropout_p, rng, deterministic)
    return (dq, dk, dv) + (None,) * 13


torch.library.register_autograd("flashattn::varlen_fwd", _varlen_backward,
                                setup_context=_varlen_setup_context)


# ----------------------------------------------------------------------------- public API

def _attention(q, k, v, dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes,
               deterministic, need_lse=True):
    wl, wr = window_size
    if causal:
        wr = 0  # FlashAttention 2: causal is window_size[1] = 0
    rng = _draw_rng() if dropout_p > 0.0 else None
    if _is_compiling():
        return _fwd_op(q, k, v, softmax_scale, causal, wl, wr, softcap, alibi_slopes, dropout_p,
                       rng, deterministic)
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return _FlashAttnFunction.apply(q, k, v, softmax_scale, causal, wl, wr, softcap,
                                        alibi_slopes, dropout_p, rng, deterministic)
    return _fwd_impl(q, k, v, softmax_scale, causal, wl, wr, softcap, alibi_slopes, dropout_p, rng,
                     need_lse)


def _varlen_attention(q, k, v, cu_q, cu_k, max_q, max_k, dropout_p, softmax_scale, causal,
                      window_size, softcap, alibi_slopes, deterministic):
    wl, wr = window_size
    if causal:
        wr = 0
    rng = _draw_rng() if dropout_p > 0.0 else None
    max_q, max_k = int(max_q), int(max_k)
    if _is_compiling():
        return _varlen_fwd_op(q, k, v, cu_q, cu_k, max_q, max_k, softmax_scale, causal, wl, wr,
                              softcap, alibi_slopes, dropout_p, rng, deterministic)
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return _FlashAttnVarlenFunction.apply(q, k, v, cu_q, cu_k, max_q, max_k, softmax_scale,
                                              causal, wl, wr, softcap, alibi_slopes, dropout_p,
                                              rng, deterministic)
    return _varlen_fwd_impl(q, k, v, cu_q, cu_k, max_q, max_k, softmax_scale, causal, wl, wr,
                            softcap, alibi_slopes, dropout_p, rng)


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                    softcap=0.0, alibi_slopes=None, deterministic=False, return_attn_probs=False):
    """FlashAttention-2's ``flash_attn_func``.

    q: (batch, seqlen_q, nheads, headdim); k, v: (batch, seqlen_k, nheads_k, headdim), nheads a
    multiple of nheads_k (MQA/GQA). causal / window_size are aligned to the bottom-right corner;
    window_size=(left, right), -1 = unbounded. softcap > 0 caps the logits with tanh. alibi_slopes:
    fp32 (nheads,) or (batch, nheads), bias -slope * |i + seqlen_k - seqlen_q - j|.

    Returns out (batch, seqlen_q, nheads, headdim); with return_attn_probs=True,
    (out, softmax_lse, None) with softmax_lse (batch, nheads, seqlen_q) fp32 (S_dmask is None).
    """
    out, lse = _attention(q, k, v, dropout_p, softmax_scale, causal, window_size, softcap,
                          alibi_slopes, deterministic, return_attn_probs)
    return (out, lse, None) if return_attn_probs else out


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                           dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                           softcap=0.0, alibi_slopes=None, deterministic=False,
                           return_attn_probs=False):
    """FlashAttention-2's ``flash_attn_varlen_func``: q (total_q, nheads, headdim), k/v (total_k,
    nheads_k, headdim), int32 cu_seqlens (batch + 1) on q's device. softmax_lse is (nheads, total_q)."""
    out, lse = _varlen_attention(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                                 dropout_p, softmax_scale, causal, window_size, softcap,
                                 alibi_slopes, deterministic)
    return (out, lse, None) if return_attn_probs else out


def flash_attn_qkvpacked_func(qkv, dropout_p=0.0, softmax_scale=None, causal=False,
                              window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                              deterministic=False, return_attn_probs=False):
    """qkv: (batch, seqlen, 3, nheads, headdim); q, k, v are strided views of it (no copy)."""
    if qkv.dim() != 5 or qkv.shape[2] != 3:
        raise _bad_rank("qkv", qkv, "(batch, seqlen, 3, nheads, headdim)")
    q, k, v = qkv.unbind(2)
    return flash_attn_func(q, k, v, dropout_p, softmax_scale, causal, window_size, softcap,
                           alibi_slopes, deterministic, return_attn_probs)


def flash_attn_kvpacked_func(q, kv, dropout_p=0.0, softmax_scale=None, causal=False,
                             window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                             deterministic=False, return_attn_probs=False):
    """kv: (batch, seqlen_k, 2, nheads_k, headdim); k, v are strided views of it (no copy)."""
    if kv.dim() != 5 or kv.shape[2] != 2:
        raise _bad_rank("kv", kv, "(batch, seqlen_k, 2, nheads_k, headdim)")
    k, v = kv.unbind(2)
    return flash_attn_func(q, k, v, dropout_p, softmax_scale, causal, window_size, softcap,
                           alibi_slopes, deterministic, return_attn_probs)


def flash_attn_varlen_qkvpacked_func(qkv, cu_seqlens, max_seqlen, dropout_p=0.0,
                                     softmax_scale=None, causal=False, window_size=(-1, -1),
                                     softcap=0.0, alibi_slopes=None, deterministic=False,
                                     return_attn_probs=False):
    """qkv: (total, 3, nheads, headdim)."""
    if qkv.dim() != 4 or qkv.shape[1] != 3:
        raise _bad_rank("qkv", qkv, "(total, 3, nheads, headdim)")
    q, k, v = qkv.unbind(1)
    return flash_attn_varlen_func(q, k, v, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen,
                                  dropout_p, softmax_scale, causal, window_size, softcap,
                                  alibi_slopes, deterministic, return_attn_probs)


def flash_attn_varlen_kvpacked_func(q, kv, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                                    dropout_p=0.0, softmax_scale=None, causal=False,
                                    window_size=(-1, -1), softcap=0.0, alibi_slopes=None,
                                    deterministic=False, return_attn_probs=False):
    """kv: (total_k, 2, nheads_k, headdim)."""
    if kv.dim() != 4 or kv.shape[1] != 2:
        raise _bad_rank("kv", kv, "(total_k, 2, nheads_k, headdim)")
    k, v = kv.unbind(1)
    return flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
                                  dropout_p, softmax_scale, causal, window_size, softcap,
                                  alibi_slopes, deterministic, return_attn_probs)


_SDPA_NAMES = {"q": "query", "k": "key", "v": "value"}


def _sdpa_error(e: ValueError) -> ValueError:
    arg = getattr(e, "argument", "")
    if arg in _SDPA_NAMES:
        return ValueError(_SDPA_NAMES[arg] + str(e)[len(arg):])
    return e


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
         enable_gqa=False):
    """``torch.nn.functional.scaled_dot_product_attention`` on (batch, heads, seqlen, headdim).

    The kernels read the (B, H, S, D) tensors in place as BSHD views (no copies); the output has
    query's memory order. ``is_causal`` follows torch: the mask is aligned to the top-left corner
    (query i sees keys j <= i) also when seqlen_q != seqlen_k. Arbitrary ``attn_mask`` tensors are
    not supported (NotImplementedError); ``enable_gqa`` as in torch (query heads a multiple of key
    heads).
    """
    if attn_mask is not None:
        raise NotImplementedError("attn_mask: flashattn supports is_causal, not arbitrary mask tensors")
    for name, t in (("query", query), ("key", key), ("value", value)):
        if t.dim() != 4:
            raise _bad_rank(name, t, "4 dimensions (batch, heads, seqlen, headdim)")
    b, hq, sq, _ = query.shape
    hk, sk = key.shape[1], key.shape[2]
    if hq != hk and not enable_gqa:
        raise ValueError(f"key: has {hk} heads but query has {hq}; pass enable_gqa=True for GQA")
    wr = -1
    causal = False
    if is_causal:
        if sq == sk:
            causal = True
        elif sq > sk:
            wr = sq - sk  # the bottom-right window moved onto the top-left diagonal
        else:
            key, value = key[:, :, :sq], value[:, :, :sq]  # keys past seqlen_q: seen by no query
            causal = True
            wr = 0
    if not _is_compiling() and not (torch.is_grad_enabled() and (
            query.requires_grad or key.requires_grad or value.requires_grad)):
        # Inference fast path: the binding reads (B, H, S, D) directly, no transposed views.
        rng = _draw_rng() if dropout_p > 0.0 else None
        seed, offset = (0, 0) if rng is None else rng.tolist()
        out = torch.empty_like(query)
        try:
            _C.forward_bhsd(query, key, value, out, None, scale, causal, -1, wr, 0.0, None, dropout_p,
                            seed, offset, _stream(query) if query.is_cuda else 0)
        except ValueError as e:
            raise _sdpa_error(e) from None
        return out
    try:
        out, _ = _attention(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2),
                            dropout_p, scale, causal, (-1, wr), 0.0, None, False, False)
    except ValueError as e:
        raise _sdpa_error(e) from None
    return out.transpose(1, 2)
