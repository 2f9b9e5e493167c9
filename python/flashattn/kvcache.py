"""KV-cache inference: FlashAttention 2's ``flash_attn_with_kvcache`` and ``PagedKVCache``.

``flash_attn_with_kvcache`` attends 1..16 new query tokens per sequence to a contiguous cache
(batch_cache, seqlen_cache, nheads_k, headdim) or a paged one (num_blocks, block_size, nheads_k,
headdim) with ``block_table``, optionally appending new k/v (rotary applied to q and k) in the
same call. CPU tensors run the CPU engine (fp16/bf16/fp32), CUDA tensors the CUDA engine
(fp16/bf16, sm_80+).

``PagedKVCache`` owns the cache tensors and a block manager: sequences, fork (parallel sampling,
beam search) with copy-on-write, prefix sharing of full blocks, and the block tables to pass to
``flash_attn_with_kvcache``.
"""

from typing import Optional, Sequence

import torch
from torch import Tensor

from . import _C
from .interface import _stream

__all__ = ["flash_attn_with_kvcache", "PagedKVCache"]


def flash_attn_with_kvcache(q, k_cache, v_cache, k=None, v=None, rotary_cos=None, rotary_sin=None,
                            cache_seqlens=None, cache_batch_idx=None, block_table=None,
                            softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
                            rotary_interleaved=True, alibi_slopes=None, num_splits=0,
                            return_softmax_lse=False):
    """FlashAttention 2's ``flash_attn_with_kvcache`` (same arguments, same semantics).

    q: (batch, seqlen, nheads, headdim). k_cache, v_cache: (batch_cache, seqlen_cache, nheads_k,
    headdim), or (num_blocks, block_size, nheads_k, headdim) with block_table (batch,
    max_blocks) int32. k, v: optional (batch, seqlen_new, nheads_k, headdim), written into the
    cache at cache_seqlens[b] .. + seqlen_new (k after rotary) before attention, in place.
    cache_seqlens: int or int32 (batch,) tensor of tokens already in the cache. rotary_cos/sin:
    (seqlen_ro, rotary_dim / 2); q is rotated at cache_seqlens + t when causal or windowed, else
    at cache_seqlens. causal is aligned to the bottom-right corner. num_splits: 0 = heuristic.

    Returns out (batch, seqlen, nheads, headdim), and softmax_lse (batch, nheads, seqlen) fp32
    with return_softmax_lse=True.
    """
    if q.dim() != 4:
        raise ValueError(f"q: expected (batch, seqlen, nheads, headdim), got shape {tuple(q.shape)}")
    b, sq, h, _ = q.shape
    if cache_seqlens is None:
        # FA2: no cache_seqlens means the whole cache is valid.
        cache_seqlens = k_cache.shape[1] - (k.shape[1] if k is not None else 0)
        if block_table is not None:
            raise ValueError("cache_seqlens: required with block_table")
    if isinstance(cache_seqlens, int):
        cache_seqlens = torch.full((b,), cache_seqlens, dtype=torch.int32, device=q.device)
    out = torch.empty_like(q)
    lse = q.new_empty((b, h, sq), dtype=torch.float32) if return_softmax_lse else None
    _C.fwd_kvcache(q, k_cache, v_cache, k, v, rotary_cos, rotary_sin, cache_seqlens,
                   cache_batch_idx, block_table, out, lse, softmax_scale, bool(causal),
                   int(window_size[0]), int(window_size[1]), float(softcap),
                   bool(rotary_interleaved), alibi_slopes, int(num_splits), _stream(q))
    return (out, lse) if return_softmax_lse else out


class PagedKVCache:
    """A paged K/V cache (num_blocks, block_size, nheads_k, headdim) with its block manager.

    >>> cache = PagedKVCache(num_blocks=1024, block_size=16, nheads_k=8, headdim=128,
    ...                      dtype=torch.bfloat16, device="cuda")
    >>> s = cache.new_sequence(prompt_token_ids)          # prefix-shared blocks are reused
    >>> children = [cache.fork(s) for _ in range(4)]      # share every block
    >>> out = cache.decode(q, children, k_new, v_new)     # appends one token each (copy-on-write)
    """

    def __init__(self, num_blocks: int, block_size: int, nheads_k: int, headdim: int,
                 dtype=torch.bfloat16, device="cpu"):
        self.k_cache = torch.zeros(num_blocks, block_size, nheads_k, headdim, dtype=dtype, device=device)
        self.v_cache = torch.zeros_like(self.k_cache)
        self.manager = _C.BlockManager(num_blocks, block_size)
        self.manager.attach_cache(self.k_cache, self.v_cache, _stream(self.k_cache))
        self.block_size = block_size

    # -- sequences
    def new_sequence(self, token_ids: Optional[Sequence[int]] = None):
        """A new sequence; with token ids, reserves their slots (reusing registered full blocks
        of an identical prefix). Returns (seq, reservation dict with 'slots', 'cached_tokens')."""
        seq = self.manager.allocate()
        res = self.manager.append_tokens(seq, list(token_ids)) if token_ids else {"slots": [], "cached_tokens": 0}
        return seq, res

    def fork(self, seq):
        return self.manager.fork(seq)

    def free(self, seq):
        self.manager.free(seq)

    def num_tokens(self, seq) -> int:
        return self.manager.num_tokens(seq)

    def stats(self) -> dict:
        return self.manager.stats()

    def write(self, slots, k: Tensor, v: Tensor):
        """Writes k, v (n, nheads_k, headdim) into the given slots (e.g. a prefill's output)."""
        idx = torch.as_tensor(slots, dtype=torch.int64, device=self.k_cache.device)
        self.k_cache.view(-1, *self.k_cache.shape[2:])[idx] = k
        self.v_cache.view(-1, *self.v_cache.shape[2:])[idx] = v

    def block_table(self, seqs, max_blocks: Optional[int] = None) -> Tensor:
        if max_blocks is None:
            max_blocks = max(len(self.manager.block_table(s)) for s in seqs)
        t = self.manager.batch_block_table(list(seqs), max_blocks, 0)
        return torch.tensor(t, dtype=torch.int32, device=self.k_cache.device).view(len(seqs), max_blocks)

    # -- attention
    def decode(self, q: Tensor, seqs, k: Optional[Tensor] = None, v: Optional[Tensor] = None, **kwargs):
        """Attention of q (len(seqs), seqlen, nheads, headdim) over each sequence's cache. With k, v
        (len(seqs), seqlen_new, nheads_k, headdim), reserves their slots first (copy-on-write of a
        shared last block) and appends them inside the call. kwargs go to flash_attn_with_kvcache."""
        seqs = list(seqs)
        lens = [self.manager.num_tokens(s) for s in seqs]
        if k is not None:
            need = sum(self.manager.blocks_needed(s, k.shape[1]) for s in seqs)
            if need > self.manager.stats()["free"]:
                raise RuntimeError(f"out of KV-cache blocks: the step needs up to {need}, "
                                   f"{self.manager.stats()['free']} are free")
            for s in seqs:
                self.manager.append(s, k.shape[1])
        seqlens = torch.tensor(lens, dtype=torch.int32, device=q.device)
        return flash_attn_with_kvcache(q, self.k_cache, self.v_cache, k, v, cache_seqlens=seqlens,
                                       block_table=self.block_table(seqs), **kwargs)
