"""flash_attn_with_kvcache and PagedKVCache against the NumPy oracle (reference.py), on the CPU
engine and, where present, the CUDA one.

The oracle sees what the call should have done: the cache after the append (new k rotated at
its position), q rotated where FlashAttention 2 rotates it, each sequence's keys 0 ..
cache_seqlens[b] + seqlen_new (rows that see no key: zeros and an LSE of -inf). The wrapper
allocates the outputs uninitialised, so every element is checked; cache rows outside the
appended ones must keep their bits, and a rejected call must leave the cache untouched.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: the kvcache tests skip")

from flashattn import PagedKVCache, flash_attn_with_kvcache  # noqa: E402
from cuda_engine import cuda_engine_available  # noqa: E402
from reference import BF16, attention_forward, error_standard, np_dtype  # noqa: E402

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
HAS_CUDA = cuda_engine_available()
cuda_mark = pytest.mark.skipif(not HAS_CUDA, reason="needs a GPU and a CUDA engine")
bf16_mark = pytest.mark.skipif(BF16 is None, reason="the bf16 oracle needs ml_dtypes")


def device_dtypes():
    marks = {"fp32": (), "fp16": (), "bf16": (bf16_mark,)}
    out = [pytest.param("cpu", p, id=f"cpu-{p}", marks=marks[p]) for p in ("fp32", "fp16", "bf16")]
    out += [pytest.param("cuda", p, id=f"cuda-{p}", marks=(cuda_mark,) + marks[p]) for p in ("fp16", "bf16")]
    return out


def rotate(x, pos, cos, sin, interleaved):
    """x (..., D) float64 rotated at integer positions pos (broadcast over x's leading dims)."""
    half = cos.shape[1]
    c, s = cos[pos], sin[pos]  # (..., half)
    y = x.copy()
    if interleaved:
        a, b = x[..., 0:2 * half:2], x[..., 1:2 * half:2]
        y[..., 0:2 * half:2] = a * c - b * s
        y[..., 1:2 * half:2] = a * s + b * c
    else:
        a, b = x[..., :half], x[..., half:2 * half]
        y[..., :half] = a * c - b * s
        y[..., half:2 * half] = a * s + b * c
    return y


class Case:
    """One decode problem: inputs as torch tensors on `device` and the expected results."""

    def __init__(self, device, precision, B=3, sq=1, hq=4, hk=2, D=64, seqlens=(37, 0, 81), new=0,
                 layout="contiguous", block_size=16, rotary_dim=0, interleaved=True, causal=True,
                 window=(-1, -1), softcap=0.0, alibi=False, num_splits=0, seed=0):
        g = torch.Generator().manual_seed(seed)
        dt = DTYPES[precision]
        self.device, self.precision, self.dt = device, precision, dt
        self.B, self.sq, self.hq, self.hk, self.D, self.new = B, sq, hq, hk, D, new
        self.seqlens = list(seqlens)
        self.capacity = max(s + new for s in self.seqlens) + 3
        rnd = lambda *shape: torch.randn(*shape, generator=g).to(dt)
        self.q = rnd(B, sq, hq, D)
        self.layout, self.block_size = layout, block_size
        if layout == "paged":
            mb = -(-self.capacity // block_size)
            self.capacity = mb * block_size
            nblocks = B * mb + 4
            self.k_cache, self.v_cache = rnd(nblocks, block_size, hk, D), rnd(nblocks, block_size, hk, D)
            self.block_table = torch.randperm(nblocks, generator=g)[:B * mb].view(B, mb).to(torch.int32)
            self.batch_idx = None
        else:
            rows = B + 2 if layout == "batch_idx" else B
            self.k_cache, self.v_cache = rnd(rows, self.capacity, hk, D), rnd(rows, self.capacity, hk, D)
            self.block_table = None
            self.batch_idx = torch.randperm(rows, generator=g)[:B].to(torch.int32) if layout == "batch_idx" else None
        self.k_new = rnd(B, new, hk, D) if new else None
        self.v_new = rnd(B, new, hk, D) if new else None
        self.rotary_dim, self.interleaved = rotary_dim, interleaved
        if rotary_dim:
            pos = np.arange(self.capacity + sq + 4)[:, None]
            theta = pos * 10000.0 ** (-2.0 * np.arange(rotary_dim // 2) / rotary_dim)
            self.cos, self.sin = np.cos(theta), np.sin(theta)
        self.causal, self.window, self.softcap = causal, window, softcap
        self.alibi = (torch.rand(B, hq, generator=g) * 0.5).float() if alibi else None
        self.num_splits = num_splits
        self.k_before, self.v_before = self.k_cache.clone(), self.v_cache.clone()

    def where(self, b, pos):
        """(cache row index, position index) of token pos of sequence b."""
        if self.block_table is not None:
            return int(self.block_table[b, pos // self.block_size]), pos % self.block_size
        return (int(self.batch_idx[b]) if self.batch_idx is not None else b), pos

    def call(self, **extra):
        to = lambda t: None if t is None else t.to(self.device)
        self.dk_cache, self.dv_cache = to(self.k_cache), to(self.v_cache)
        kw = dict(k=to(self.k_new), v=to(self.v_new),
                  cache_seqlens=torch.tensor(self.seqlens, dtype=torch.int32, device=self.device),
                  cache_batch_idx=to(self.batch_idx), block_table=to(self.block_table), causal=self.causal,
                  window_size=self.window, softcap=self.softcap, rotary_interleaved=self.interleaved,
                  alibi_slopes=to(self.alibi), num_splits=self.num_splits, return_softmax_lse=True)
        if self.rotary_dim:
            kw["rotary_cos"] = torch.from_numpy(self.cos).to(self.device, torch.float32)
            kw["rotary_sin"] = torch.from_numpy(self.sin).to(self.device, torch.float32)
        kw.update(extra)
        out, lse = flash_attn_with_kvcache(to(self.q), self.dk_cache, self.dv_cache, **kw)
        return out.cpu(), lse.cpu(), self.dk_cache.cpu(), self.dv_cache.cpu()

    def expected(self, precision):
        """(out, lse, appended k rows exact, appended v rows) with the oracle in `precision`."""
        f64 = lambda t: t.double().numpy()
        outs, lses, new_k = [], [], []
        per_token = self.causal or self.window[0] >= 0 or self.window[1] >= 0
        for b in range(self.B):
            L = self.seqlens[b]
            k = np.stack([f64(self.k_before[self.where(b, p)[0], self.where(b, p)[1]]) for p in range(L)]) \
                if L else np.zeros((0, self.hk, self.D))
            v = np.stack([f64(self.v_before[self.where(b, p)[0], self.where(b, p)[1]]) for p in range(L)]) \
                if L else np.zeros((0, self.hk, self.D))
            if self.new:
                kn = f64(self.k_new[b])
                if self.rotary_dim:
                    pos = np.arange(L, L + self.new)[:, None]
                    kn = np.concatenate([rotate(kn[..., :self.rotary_dim], pos, self.cos, self.sin, self.interleaved),
                                         kn[..., self.rotary_dim:]], axis=-1)
                new_k.append(kn)
                k = np.concatenate([k, kn])
                v = np.concatenate([v, f64(self.v_new[b])])
            q = f64(self.q[b])
            if self.rotary_dim:
                pos = (L + np.arange(self.sq) if per_token else np.full(self.sq, L))[:, None]
                q = np.concatenate([rotate(q[..., :self.rotary_dim], pos, self.cos, self.sin, self.interleaved),
                                    q[..., self.rotary_dim:]], axis=-1)
            if precision != "fp64":  # the naive baseline sees the inputs rounded as the engine does
                rnd = lambda x: x.astype(np_dtype(precision)).astype(np.float64)
                q, k, v = rnd(q), rnd(k), rnd(v)
            alibi = None if self.alibi is None else self.alibi[b:b + 1].double().numpy()
            o, l = attention_forward(q[None], k[None], v[None], precision=precision, causal=self.causal,
                                     window_size=self.window, softcap=self.softcap, alibi_slopes=alibi)
            outs.append(o[0])
            lses.append(l[0])
        return np.stack(outs), np.stack(lses), new_k

    def check(self, out, lse, k_after, v_after):
        p = self.precision
        oracle, oracle_lse, new_k = self.expected("fp64")
        naive, naive_lse, _ = self.expected(p) if p != "fp32" else (oracle, oracle_lse, None)
        ok, e, bound = error_standard(out.double().numpy(), naive, oracle, p)
        assert ok, f"out: error {e:.3g} > bound {bound:.3g}"
        fin = np.isfinite(oracle_lse)
        assert np.array_equal(np.isfinite(lse.numpy()), fin), "lse: -inf where the oracle has none, or the reverse"
        assert np.allclose(lse.double().numpy()[fin], oracle_lse[fin], atol=2e-2 if p != "fp32" else 1e-4), "lse"
        # The cache: appended rows hold the new k (rotated) and v, every other element its old bits.
        k_exp, v_exp = self.k_before.clone(), self.v_before.clone()
        for b in range(self.B):
            for i in range(self.new):
                blk, row = self.where(b, self.seqlens[b] + i)
                k_exp[blk, row] = torch.from_numpy(new_k[b][i]).to(self.dt)
                v_exp[blk, row] = self.v_new[b, i]
        tol = {"fp32": 1e-6, "fp16": 1e-3, "bf16": 8e-3}[p]
        assert torch.allclose(k_after.double(), k_exp.double(), rtol=tol, atol=tol), "k cache"
        assert torch.equal(v_after, v_exp), "v cache"


CASES = {  # name: Case kwargs
    "contiguous": dict(),
    "gqa_multi_token": dict(sq=4, hq=8, hk=2, seqlens=(50, 3, 120)),
    "append": dict(new=1, seqlens=(10, 0, 65)),
    "append_rotary_interleaved": dict(new=2, sq=2, rotary_dim=32, seqlens=(17, 5, 40)),
    "append_rotary_halves_not_causal": dict(new=1, rotary_dim=64, interleaved=False, causal=False),
    "paged16_append": dict(layout="paged", block_size=16, new=1, seqlens=(33, 16, 0)),
    "paged_block5": dict(layout="paged", block_size=5, seqlens=(12, 31, 4)),
    "batch_idx": dict(layout="batch_idx", new=1),
    "window_softcap": dict(window=(20, 0), softcap=5.0, seqlens=(70, 2, 41)),
    "alibi_head128": dict(alibi=True, D=128, hq=2, hk=1),
    "splits": dict(num_splits=3, seqlens=(200, 1, 90)),
}


@pytest.mark.parametrize("device, precision", device_dtypes())
@pytest.mark.parametrize("name", list(CASES))
def test_with_kvcache_against_oracle(device, precision, name):
    c = Case(device, precision, seed=hash(name) % 1000, **CASES[name])
    c.check(*c.call())


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda_mark)])
def test_paged_and_contiguous_caches_are_bit_identical(device):
    paged = Case(device, "bf16", layout="paged", block_size=16, new=1, hq=8, hk=2, sq=2, seqlens=(45, 17, 64))
    flat = Case(device, "bf16", new=1, hq=8, hk=2, sq=2, seqlens=(45, 17, 64))
    flat.q, flat.k_new, flat.v_new = paged.q, paged.k_new, paged.v_new
    for b in range(3):
        for p in range(paged.seqlens[b]):
            blk, row = paged.where(b, p)
            flat.k_cache[b, p], flat.v_cache[b, p] = paged.k_cache[blk, row], paged.v_cache[blk, row]
    flat.k_before, flat.v_before = flat.k_cache.clone(), flat.v_cache.clone()
    out_p, lse_p, _, _ = paged.call()
    out_f, lse_f, _, _ = flat.call()
    assert torch.equal(out_p, out_f) and torch.equal(lse_p, lse_f)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda_mark)])
def test_split_and_unsplit_agree(device):
    one = Case(device, "fp16", num_splits=1, seqlens=(300, 5, 129))
    many = Case(device, "fp16", num_splits=7, seqlens=(300, 5, 129))
    out1, lse1, _, _ = one.call()
    out7, lse7, k7, v7 = many.call()
    many.check(out7, lse7, k7, v7)
    assert torch.allclose(out1.float(), out7.float(), atol=2e-3, rtol=2e-3)
    assert torch.allclose(lse1, lse7, atol=1e-4)


@bf16_mark
@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda_mark)])
def test_paged_kv_cache_fork_copy_on_write_and_prefix_sharing(device):
    """Three samples forked from one prompt append different tokens: each attends to the prompt
    plus its own token (copy-on-write of the shared last block), the prompt's full blocks stay
    shared, a second sequence with the same prompt reuses them, and freeing everything returns
    every block."""
    torch.manual_seed(0)
    bs, hk, hq, D, dt = 16, 2, 4, 64, torch.bfloat16
    cache = PagedKVCache(num_blocks=32, block_size=bs, nheads_k=hk, headdim=D, dtype=dt, device=device)
    prompt = list(range(1000, 1040))  # 40 tokens: two full blocks and a partial third
    parent, res = cache.new_sequence(prompt)
    assert res["cached_tokens"] == 0 and len(res["slots"]) == 40
    pk, pv = torch.randn(40, hk, D).to(dt), torch.randn(40, hk, D).to(dt)
    cache.write(res["slots"], pk.to(device), pv.to(device))
    kids = [cache.fork(parent) for _ in range(3)]
    assert cache.stats()["shared"] >= 3
    q = torch.randn(3, 1, hq, D).to(dt)
    kn, vn = torch.randn(3, 1, hk, D).to(dt), torch.randn(3, 1, hk, D).to(dt)
    out = cache.decode(q.to(device), kids, kn.to(device), vn.to(device), causal=True).cpu()
    for i in range(3):
        k = torch.cat([pk, kn[i]]).double().numpy()[None]
        v = torch.cat([pv, vn[i]]).double().numpy()[None]
        ref, _ = attention_forward(q[i:i + 1].double().numpy(), k, v, causal=True)
        naive, _ = attention_forward(q[i:i + 1].double().numpy(), k, v, precision="bf16", causal=True)
        ok, e, bound = error_standard(out[i:i + 1].double().numpy(), naive, ref, "bf16")
        assert ok, f"sample {i}: error {e:.3g} > {bound:.3g}"
        assert cache.num_tokens(kids[i]) == 41
    # The parent's rows are intact: its 40 tokens read back from its own table.
    table = cache.block_table([parent])[0].cpu()
    for t in (0, 17, 39):
        blk = int(table[t // bs])
        assert torch.equal(cache.k_cache[blk, t % bs].cpu(), pk[t]) and torch.equal(cache.v_cache[blk, t % bs].cpu(), pv[t])
    # The prompt's two full blocks are shared by all four; each child has its own third block.
    tables = cache.block_table([parent] + kids).cpu()
    assert all(torch.equal(tables[i, :2], tables[0, :2]) for i in range(1, 4))
    assert len({int(tables[i, 2]) for i in range(4)}) == 4
    other, res2 = cache.new_sequence(prompt)
    assert res2["cached_tokens"] == 32  # the two full blocks, found by content hash
    for s in [parent, other] + kids:
        cache.free(s)
    st = cache.stats()
    assert st["used"] == 0 and st["free"] == 32, st


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=cuda_mark)])
def test_bad_inputs_raise_naming_the_argument_and_write_nothing(device):
    c = Case(device, "fp16", new=1)
    cases = [
        (dict(cache_seqlens=torch.tensor(c.seqlens, dtype=torch.int64, device=device)), "cache_seqlens"),
        (dict(k=c.k_new[..., :32].to(device), v=c.v_new[..., :32].to(device)), "k"),
        (dict(num_splits=-2), "num_splits"),
        (dict(window_size=(-3, 0)), "window"),
    ]
    for extra, name in cases:
        with pytest.raises(ValueError, match=name):
            c.call(**extra)
        assert torch.equal(c.dk_cache.cpu(), c.k_before) and torch.equal(c.dv_cache.cpu(), c.v_before), name
    with pytest.raises(ValueError, match="cache_seqlens"):
        flash_attn_with_kvcache(c.q.to(device), c.k_cache.to(device), c.v_cache.to(device),
                                block_table=torch.zeros(3, 4, dtype=torch.int32, device=device))
