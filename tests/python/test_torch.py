"""The torch interface on CPU tensors (and CUDA tensors where a GPU and a CUDA engine exist).

Oracle: torch SDPA's math backend in float64 where SDPA can express the case (plain, causal,
GQA, window and ALiBi as attn_mask); the NumPy fp64 oracle (reference.py) for softcap and
bottom-right masks with seqlen_q != seqlen_k. Error standard: err <= 2 * err(naive attention in
the input dtype) + atol.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed: the torch interface tests skip")

import flashattn  # noqa: E402
from flashattn import interface as fi  # noqa: E402
from cuda_engine import cuda_engine_available  # noqa: E402
from reference import ATOL, attention_backward, attention_forward, dropout_keep  # noqa: E402

F = torch.nn.functional
SDPBackend = torch.nn.attention.SDPBackend
HAS_CUDA = cuda_engine_available()
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason="needs a GPU and a CUDA engine"))]
cuda_only = pytest.mark.skipif(not HAS_CUDA, reason="needs a GPU and a CUDA engine")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def dtypes_for(device):
    return ["fp32", "fp16", "bf16"] if device == "cpu" else ["fp16", "bf16"]


def device_dtype_params():
    out = []
    for d in DEVICES:
        name = d if isinstance(d, str) else d.values[0]
        marks = () if isinstance(d, str) else d.marks
        for p in dtypes_for(name):
            out.append(pytest.param(name, p, marks=marks, id=f"{name}-{p}"))
    return out


def error_ok(engine, naive, oracle, precision, what, atol_scale=1.0):
    e = (engine.double() - oracle).abs().max().item()
    n = (naive.double() - oracle).abs().max().item()
    bound = 2 * n + ATOL[precision] * atol_scale
    assert not math.isnan(e), f"{what}: NaN"
    assert e <= bound, f"{what}: error {e:.3g} > 2 x naive {n:.3g} + atol = {bound:.3g}"


def sdpa_reference(q, k, v, dout, dtype, causal=False, window=(-1, -1), alibi=None, scale=None):
    """SDPA math backend on BSHD inputs in `dtype`: returns (out, dq, dk, dv) in BSHD."""
    B, Sq, Hq, D = q.shape
    Sk, Hk = k.shape[1], k.shape[2]
    qh, kh, vh = (x.detach().to(dtype).transpose(1, 2).requires_grad_() for x in (q, k, v))
    mask = None
    wl, wr = window
    if causal:
        wr = 0
    if wl >= 0 or wr >= 0 or alibi is not None:
        i = torch.arange(Sq)[:, None]
        j = torch.arange(Sk)[None, :]
        diag = i + Sk - Sq
        vis = torch.ones(Sq, Sk, dtype=torch.bool)
        if wl >= 0:
            vis &= j >= diag - wl
        if wr >= 0:
            vis &= j <= diag + wr
        mask = torch.zeros(Sq, Sk, dtype=torch.float64).masked_fill(~vis, float("-inf"))
        if alibi is not None:
            mask = mask - alibi.double().cpu().reshape(-1, Hq, 1, 1) * (i + Sk - Sq - j).abs()
        mask = mask.to(q.device, dtype)
    with torch.nn.attention.sdpa_kernel(SDPBackend.MATH):
        o = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=scale, enable_gqa=Hq != Hk)
    o.backward(dout.detach().to(dtype).transpose(1, 2))
    return o.transpose(1, 2), qh.grad.transpose(1, 2), kh.grad.transpose(1, 2), vh.grad.transpose(1, 2)


def make(shape, dtype, device, gen, scale=1.0):
    return (torch.randn(shape, generator=gen, dtype=torch.float32) * scale).to(device=device, dtype=dtype)


SDPA_CASES = [  # (B, Sq, Sk, Hq, Hkv, D, opts)
    (2, 37, 37, 4, 4, 64, dict()),
    (2, 37, 37, 4, 4, 64, dict(causal=True)),
    (1, 19, 45, 8, 2, 128, dict()),  # GQA
    (2, 40, 40, 6, 3, 32, dict(causal=True)),
    (1, 33, 33, 2, 2, 64, dict(window_size=(8, 4))),
    (2, 25, 31, 4, 1, 64, dict(alibi=True, softmax_scale=0.2)),
]


@pytest.mark.parametrize("device, precision", device_dtype_params())
@pytest.mark.parametrize("case", SDPA_CASES, ids=lambda c: f"B{c[0]}_Sq{c[1]}_Sk{c[2]}_H{c[3]}/{c[4]}_D{c[5]}_{'_'.join(c[6])}")
def test_forward_backward_against_sdpa_math_fp64(case, device, precision):
    B, Sq, Sk, Hq, Hkv, D, opts = case
    dtype = DTYPES[precision]
    gen = torch.Generator().manual_seed(hash((case[:6], precision)) % 2**31)
    q, k, v = make((B, Sq, Hq, D), dtype, device, gen), make((B, Sk, Hkv, D), dtype, device, gen), make((B, Sk, Hkv, D), dtype, device, gen)
    dout = make((B, Sq, Hq, D), dtype, device, gen)
    alibi = (torch.rand(Hq, generator=gen) * 0.5 + 0.05).to(device) if opts.get("alibi") else None
    scale = opts.get("softmax_scale")
    causal = opts.get("causal", False)
    window = opts.get("window_size", (-1, -1))
    for x in (q, k, v):
        x.requires_grad_()
    out = flashattn.flash_attn_func(q, k, v, softmax_scale=scale, causal=causal, window_size=window, alibi_slopes=alibi)
    out.backward(dout)
    ref = sdpa_reference(q, k, v, dout, torch.float64, causal, window, alibi, scale)
    naive = sdpa_reference(q, k, v, dout, dtype, causal, window, alibi, scale)
    for name, got, r, n in zip(("out", "dq", "dk", "dv"), (out, q.grad, k.grad, v.grad), ref, naive):
        assert got.dtype == dtype and got.shape == r.shape and got.device == q.device
        error_ok(got, n.detach(), r.detach(), precision, name)


@pytest.mark.parametrize("device, precision", device_dtype_params())
def test_softcap_window_alibi_gqa_against_numpy_oracle(device, precision):
    """Bottom-right masks with Sq != Sk (rows without keys included) and softcap: the NumPy oracle."""
    dtype = DTYPES[precision]
    gen = torch.Generator().manual_seed(7)
    B, Sq, Sk, Hq, Hkv, D = 2, 29, 21, 4, 2, 64
    q, k, v = make((B, Sq, Hq, D), dtype, device, gen), make((B, Sk, Hkv, D), dtype, device, gen), make((B, Sk, Hkv, D), dtype, device, gen)
    dout = make((B, Sq, Hq, D), dtype, device, gen)
    alibi = (torch.rand(B, Hq, generator=gen) * 0.3).to(device)
    opts = dict(causal=True, window_size=(6, -1), softcap=4.0)
    for x in (q, k, v):
        x.requires_grad_()
    out, lse, s_dmask = flashattn.flash_attn_func(q, k, v, alibi_slopes=alibi, return_attn_probs=True, **opts)
    assert s_dmask is None and lse.shape == (B, Hq, Sq) and lse.dtype == torch.float32
    out.backward(dout)
    np_in = [x.detach().float().cpu().numpy() for x in (q, k, v, dout)]
    if precision == "bf16":
        import ml_dtypes
        np_in = [x.astype(ml_dtypes.bfloat16) for x in np_in]
    else:
        np_in = [x.astype(np.float16 if precision == "fp16" else np.float32) for x in np_in]
    nq, nk, nv, nd = np_in
    kw = dict(alibi_slopes=alibi.cpu().numpy(), **opts)
    ref_o, ref_lse = attention_forward(nq, nk, nv, "fp64", **kw)
    naive_o, naive_lse = attention_forward(nq, nk, nv, precision, **kw)
    ref_g = attention_backward(nd, nq, nk, nv, "fp64", **kw)
    naive_g = attention_backward(nd, nq, nk, nv, precision, **kw)
    t = lambda a: torch.from_numpy(np.asarray(a, np.float64))  # noqa: E731
    error_ok(out.detach().cpu(), t(naive_o), t(ref_o), precision, "out")
    lse_c = lse.cpu().double()
    assert torch.equal(torch.isneginf(lse_c), torch.isneginf(t(ref_lse)))  # rows before the first key
    fin = torch.isfinite(t(ref_lse))
    error_ok(lse_c[fin], t(naive_lse)[fin], t(ref_lse)[fin], "fp32", "lse", atol_scale=10)
    for name, got, r, n in zip(("dq", "dk", "dv"), (q.grad, k.grad, v.grad), ref_g, naive_g):
        error_ok(got.cpu(), t(n), t(r), precision, name)


@pytest.mark.parametrize("opts", [dict(), dict(causal=True), dict(softcap=2.0, window_size=(3, 2)),
                                  dict(alibi=True, causal=True)], ids=str)
def test_gradcheck_through_fp32_engine(opts):
    """gradcheck is fp64-only and the engine computes in fp32 at most: the checked function casts
    float64 inputs to float32, runs flashattn, casts back. Finite differences of an fp32 result with
    eps=1e-3 carry ~1e-4 rounding noise, hence atol=2e-3 / rtol=1e-2 (a wrong gradient is off by O(1))."""
    gen = torch.Generator().manual_seed(3)
    B, Sq, Sk, Hq, Hkv, D = 1, 5, 7, 4, 2, 8
    q = torch.randn(B, Sq, Hq, D, generator=gen, dtype=torch.float64, requires_grad=True)
    k = torch.randn(B, Sk, Hkv, D, generator=gen, dtype=torch.float64, requires_grad=True)
    v = torch.randn(B, Sk, Hkv, D, generator=gen, dtype=torch.float64, requires_grad=True)
    alibi = torch.rand(Hq, generator=gen) if opts.get("alibi") else None
    kw = {key: val for key, val in opts.items() if key != "alibi"}

    def fn(q, k, v):
        return flashattn.flash_attn_func(q.float(), k.float(), v.float(), alibi_slopes=alibi, **kw).double()

    assert torch.autograd.gradcheck(fn, (q, k, v), eps=1e-3, atol=2e-3, rtol=1e-2)


def test_gradcheck_catches_a_wrong_gradient(monkeypatch):
    """The tolerance above is loose; make sure it still rejects a slightly wrong dk."""
    real = flashattn._C.backward

    def wrong(dout, q, k, v, out, lse, dq, dk, dv, *args):
        real(dout, q, k, v, out, lse, dq, dk, dv, *args)
        dk.mul_(1.05)

    monkeypatch.setattr(flashattn._C, "backward", wrong)
    gen = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 5, 2, 8, generator=gen, dtype=torch.float64, requires_grad=True) for _ in range(3))

    def fn(q, k, v):
        return flashattn.flash_attn_func(q.float(), k.float(), v.float()).double()

    assert not torch.autograd.gradcheck(fn, (q, k, v), eps=1e-3, atol=2e-3, rtol=1e-2, raise_exception=False)


# ----------------------------------------------------------------------------- no copies

def test_strided_views_reach_the_library_without_copies(monkeypatch):
    """sdpa's (B, H, S, D) tensors must reach the library as they are (same data_ptr, strides
    read in place, as BSHD views on the autograd path), never as contiguous copies."""
    seen = []
    for name in ("forward", "forward_bhsd"):
        real = getattr(flashattn._C, name)

        def spy(q, k, v, out, lse, *args, real=real, name=name):
            seen.append((name, [flashattn._C.describe(t) for t in (q, k, v, out)]))
            return real(q, k, v, out, lse, *args)

        monkeypatch.setattr(flashattn._C, name, spy)
    query, key, value = (torch.randn(2, 4, 19, 64) for _ in range(3))
    out = flashattn.sdpa(query, key, value, is_causal=True)  # inference: forward_bhsd
    (name, (dq, dk, dv, do)), = seen
    assert name == "forward_bhsd"
    for d, t in ((dq, query), (dk, key), (dv, value), (do, out)):
        assert d["data_ptr"] == t.data_ptr() and d["strides"] == t.stride() == (4 * 19 * 64, 19 * 64, 64, 1)

    seen.clear()
    for t in (query, key, value):
        t.requires_grad_()
    out = flashattn.sdpa(query, key, value, is_causal=True)  # autograd: transposed views
    (name, (dq, dk, dv, do)), = seen
    assert name == "forward"
    for d, t in ((dq, query), (dk, key), (dv, value)):
        assert d["data_ptr"] == t.data_ptr()
        assert d["strides"] == t.transpose(1, 2).stride() == (4 * 19 * 64, 64, 19 * 64, 1)
    assert do["data_ptr"] == out.data_ptr() and out.is_contiguous()  # output in the caller's layout

    seen.clear()
    qkv = torch.randn(2, 11, 3, 4, 32)
    flashattn.flash_attn_qkvpacked_func(qkv)
    (name, (dq, dk, dv, _)), = seen
    assert [d["data_ptr"] for d in (dq, dk, dv)] == [qkv[:, :, i].data_ptr() for i in range(3)]
    assert dq["strides"] == qkv[:, :, 0].stride()


class _RecordOps(torch.utils._python_dispatch.TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


COPY_OPS = {"aten.clone", "aten.copy_", "aten._to_copy", "aten.contiguous", "aten.cat", "aten.stack"}


def test_no_copy_ops_in_forward_and_backward():
    query, key, value = (torch.randn(2, 4, 19, 64) for _ in range(3))
    with _RecordOps() as rec:
        flashattn.sdpa(query, key, value, is_causal=True)
        flashattn.flash_attn_func(query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2))
    assert not COPY_OPS & set(rec.ops), rec.ops
    for t in (query, key, value):
        t.requires_grad_()
    with _RecordOps() as rec:
        out = flashattn.sdpa(query, key, value, is_causal=True)
    assert not COPY_OPS & set(rec.ops), rec.ops
    assert "aten.empty_like" in rec.ops
    grad = torch.randn_like(out)
    with _RecordOps() as rec:
        out.backward(grad)
    assert not COPY_OPS & set(rec.ops), rec.ops
    with _RecordOps() as rec:  # the recorder itself does see copies
        query.contiguous().clone()
    assert "aten.clone" in rec.ops


# ----------------------------------------------------------------------------- features

@pytest.mark.parametrize("device", DEVICES)
def test_dropout_is_reproducible_from_torch_manual_seed(device):
    dtype = torch.float32 if device == "cpu" else torch.float16
    gen = torch.Generator().manual_seed(1)
    B, S, H, D = 2, 23, 4, 32
    q, k, v = (make((B, S, H, D), dtype, device, gen).requires_grad_() for _ in range(3))
    dout = make((B, S, H, D), dtype, device, gen)

    def run(seed):
        torch.manual_seed(seed)
        out = flashattn.flash_attn_func(q, k, v, dropout_p=0.25, causal=True)
        grads = torch.autograd.grad(out, (q, k, v), dout)
        return (out,) + grads

    a, b, c = run(5), run(5), run(6)
    for x, y in zip(a, b):
        assert torch.equal(x, y)
    assert not torch.equal(a[0], c[0])
    # The mask is the library's Philox keyed by the seed drawn from torch's generator.
    torch.manual_seed(5)
    seed, offset = torch.randint(0, 2**62, (2,), dtype=torch.int64).tolist()
    args = [x.detach().float().cpu().numpy() for x in (q, k, v)]
    ref_o, _ = attention_forward(*args, dropout_p=0.25, causal=True, seed=seed, offset=offset)
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    np.testing.assert_allclose(a[0].detach().float().cpu().numpy(), ref_o, atol=tol)
    keep = dropout_keep(0, S, S, 0.25, seed, offset)
    assert 0.65 < keep.mean() < 0.85


@pytest.mark.parametrize("device", DEVICES)
def test_varlen_equals_per_sequence_calls(device):
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    gen = torch.Generator().manual_seed(2)
    lens_q, lens_k = [7, 1, 30, 0], [12, 9, 30, 4]
    Hq, Hk, D = 6, 2, 64
    cu_q = torch.tensor([0] + np.cumsum(lens_q).tolist(), dtype=torch.int32, device=device)
    cu_k = torch.tensor([0] + np.cumsum(lens_k).tolist(), dtype=torch.int32, device=device)
    q = make((sum(lens_q), Hq, D), dtype, device, gen).requires_grad_()
    k = make((sum(lens_k), Hk, D), dtype, device, gen).requires_grad_()
    v = make((sum(lens_k), Hk, D), dtype, device, gen).requires_grad_()
    dout = make(q.shape, dtype, device, gen)
    out, lse, _ = flashattn.flash_attn_varlen_func(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), causal=True,
                                                   softcap=5.0, return_attn_probs=True)
    assert lse.shape == (Hq, sum(lens_q))
    grads = torch.autograd.grad(out, (q, k, v), dout)
    for i in range(len(lens_q)):
        rq = slice(cu_q[i].item(), cu_q[i + 1].item())
        rk = slice(cu_k[i].item(), cu_k[i + 1].item())
        if lens_q[i] == 0:
            assert torch.all(grads[1][rk] == 0)
            continue
        qi, ki, vi = (x.detach()[r][None].requires_grad_() for x, r in ((q, rq), (k, rk), (v, rk)))
        oi = flashattn.flash_attn_func(qi, ki, vi, causal=True, softcap=5.0)
        gi = torch.autograd.grad(oi, (qi, ki, vi), dout[rq][None])
        tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-2, rtol=2e-2)
        torch.testing.assert_close(out[rq], oi[0], **tol)
        for g, gref, r in zip(grads, gi, (rq, rk, rk)):
            torch.testing.assert_close(g[r], gref[0], **tol)


def test_packed_forms_equal_unpacked():
    gen = torch.Generator().manual_seed(3)
    qkv = torch.randn(2, 17, 3, 4, 32, generator=gen, requires_grad=True)
    out = flashattn.flash_attn_qkvpacked_func(qkv, causal=True)
    (g,) = torch.autograd.grad(out.sum(), qkv)
    q, k, v = (qkv.detach()[:, :, i].requires_grad_() for i in range(3))
    ref = flashattn.flash_attn_func(q, k, v, causal=True)
    gref = torch.autograd.grad(ref.sum(), (q, k, v))
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(g, torch.stack(gref, 2))

    kv = torch.randn(2, 21, 2, 2, 32, generator=gen)
    qq = torch.randn(2, 17, 4, 32, generator=gen)
    torch.testing.assert_close(flashattn.flash_attn_kvpacked_func(qq, kv), flashattn.flash_attn_func(qq, kv[:, :, 0], kv[:, :, 1]))

    cu = torch.tensor([0, 5, 17], dtype=torch.int32)
    qkv_p = torch.randn(17, 3, 4, 32, generator=gen)
    a = flashattn.flash_attn_varlen_qkvpacked_func(qkv_p, cu, 12, causal=True)
    b = flashattn.flash_attn_varlen_func(qkv_p[:, 0], qkv_p[:, 1], qkv_p[:, 2], cu, cu, 12, 12, causal=True)
    torch.testing.assert_close(a, b)
    kv_p = torch.randn(17, 2, 2, 32, generator=gen)
    a = flashattn.flash_attn_varlen_kvpacked_func(qkv_p[:, 0], kv_p, cu, cu, 12, 12)
    b = flashattn.flash_attn_varlen_func(qkv_p[:, 0], kv_p[:, 0], kv_p[:, 1], cu, cu, 12, 12)
    torch.testing.assert_close(a, b)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("sq, sk, hq, hk, causal", [(33, 33, 4, 4, False), (33, 33, 8, 2, True), (40, 25, 4, 4, True),
                                                   (17, 40, 4, 1, True), (1, 50, 4, 2, False)])
def test_sdpa_matches_torch_sdpa(device, sq, sk, hq, hk, causal):
    dtype = torch.float32 if device == "cpu" else torch.float16
    gen = torch.Generator().manual_seed(sq * sk + hq)
    q = make((2, hq, sq, 64), dtype, device, gen).requires_grad_()
    k = make((2, hk, sk, 64), dtype, device, gen).requires_grad_()
    v = make((2, hk, sk, 64), dtype, device, gen).requires_grad_()
    dout = make((2, hq, sq, 64), dtype, device, gen)
    out = flashattn.sdpa(q, k, v, is_causal=causal, scale=0.11, enable_gqa=hq != hk)
    g = torch.autograd.grad(out, (q, k, v), dout)
    qd, kd, vd = (x.detach().double().requires_grad_() for x in (q, k, v))
    with torch.nn.attention.sdpa_kernel(SDPBackend.MATH):
        ref = F.scaled_dot_product_attention(qd, kd, vd, is_causal=causal, scale=0.11, enable_gqa=hq != hk)
    gref = torch.autograd.grad(ref, (qd, kd, vd), dout.double())
    tol = dict(atol=2e-5, rtol=1e-4) if dtype == torch.float32 else dict(atol=4e-3, rtol=4e-3)
    assert out.shape == ref.shape and out.is_contiguous()
    torch.testing.assert_close(out.double(), ref, **tol)
    for a, b in zip(g, gref):
        torch.testing.assert_close(a.double(), b, **tol)


# ----------------------------------------------------------------------------- torch.compile

class _Block(torch.nn.Module):
    def __init__(self, dim=64, heads=4, kv_heads=2, dropout_p=0.0):
        super().__init__()
        self.h, self.hk, self.d = heads, kv_heads, dim // heads
        self.q = torch.nn.Linear(dim, dim)
        self.kv = torch.nn.Linear(dim, 2 * kv_heads * self.d)
        self.o = torch.nn.Linear(dim, dim)
        self.dropout_p = dropout_p

    def forward(self, x):
        B, S, _ = x.shape
        q = self.q(x).view(B, S, self.h, self.d)
        kv = self.kv(x).view(B, S, 2, self.hk, self.d)
        a = flashattn.flash_attn_kvpacked_func(q, kv, causal=True, softcap=10.0, dropout_p=self.dropout_p)
        b = flashattn.sdpa(q.transpose(1, 2), kv[:, :, 0].transpose(1, 2), kv[:, :, 1].transpose(1, 2), enable_gqa=True)
        return self.o(a.reshape(B, S, -1) + b.transpose(1, 2).reshape(B, S, -1))


@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph_forward_backward(backend):
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = _Block()
    x = torch.randn(2, 24, 64, requires_grad=True)
    ref = model(x)
    ref_grads = torch.autograd.grad(ref.square().sum(), [x] + list(model.parameters()))
    compiled = torch.compile(model, fullgraph=True, backend=backend)
    out = compiled(x)
    grads = torch.autograd.grad(out.square().sum(), [x] + list(model.parameters()))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_torch_compile_fullgraph_with_dropout_and_varlen():
    torch._dynamo.reset()
    model = _Block(dropout_p=0.2)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = torch.randn(2, 16, 64, requires_grad=True)
    out = compiled(x)
    out.sum().backward()
    assert torch.isfinite(x.grad).all()

    cu = torch.tensor([0, 3, 20], dtype=torch.int32)

    def f(q, k, v):
        return flashattn.flash_attn_varlen_func(q, k, v, cu, cu, 17, 17, causal=True).sum()

    q, k, v = (torch.randn(20, 2, 32, requires_grad=True) for _ in range(3))
    torch.testing.assert_close(torch.compile(f, fullgraph=True, backend="aot_eager")(q, k, v), f(q, k, v))


def test_custom_ops_pass_opcheck():
    gen = torch.Generator().manual_seed(9)
    q = torch.randn(2, 9, 4, 32, generator=gen, requires_grad=True)
    k = torch.randn(2, 13, 2, 32, generator=gen, requires_grad=True)
    v = torch.randn(2, 13, 2, 32, generator=gen, requires_grad=True)
    rng = torch.tensor([123, 0])
    torch.library.opcheck(torch.ops.flashattn.fwd.default, (q, k, v, None, True, -1, 0, 0.0, None, 0.0, None, False))
    torch.library.opcheck(torch.ops.flashattn.fwd.default, (q, k, v, 0.3, False, 4, 2, 3.0, torch.rand(4), 0.1, rng, False))
    cu = torch.tensor([0, 4, 9], dtype=torch.int32)
    cuk = torch.tensor([0, 6, 13], dtype=torch.int32)
    torch.library.opcheck(torch.ops.flashattn.varlen_fwd.default,
                          (q[0], k[0], v[0], cu, cuk, 5, 7, None, True, -1, 0, 0.0, None, 0.0, None, False))


# ----------------------------------------------------------------------------- errors

@pytest.mark.parametrize("make_args, argument, words", [
    (lambda q, k, v: (q[0], k, v), "q", "4 dimensions"),
    (lambda q, k, v: (q, k[..., :16], v), "k", "head_dim"),
    (lambda q, k, v: (q, k, v[:, :, :1]), "v", "heads"),
    (lambda q, k, v: (q.double(), k, v), "q", "float64"),
    (lambda q, k, v: (q, k.half(), v), "k", "dtype"),
    (lambda q, k, v: (q[..., ::2], k[..., ::2], v[..., ::2]), "q", "contiguous"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(make_args, argument, words):
    q, k, v = (torch.randn(1, 8, 2, 32) for _ in range(3))
    with pytest.raises(ValueError, match=words) as e:
        flashattn.flash_attn_func(*make_args(q, k, v))
    assert str(e.value).startswith(argument + ":")


def test_bad_options_and_sdpa_errors():
    q = torch.randn(1, 8, 2, 32)
    with pytest.raises(ValueError, match="^dropout_p:"):
        flashattn.flash_attn_func(q, q, q, dropout_p=1.5)
    with pytest.raises(ValueError, match="^alibi_slopes:"):
        flashattn.flash_attn_func(q, q, q, alibi_slopes=torch.ones(3))
    with pytest.raises(ValueError, match="^softcap:"):
        flashattn.flash_attn_func(q, q, q, softcap=-2.0)
    with pytest.raises(ValueError, match="^qkv:"):
        flashattn.flash_attn_qkvpacked_func(q)
    qh = torch.randn(1, 4, 8, 32)
    with pytest.raises(ValueError, match="^key: .*enable_gqa"):
        flashattn.sdpa(qh, qh[:, :2], qh[:, :2])
    with pytest.raises(ValueError, match="^key: .*head_dim"):
        flashattn.sdpa(qh, qh[..., :16], qh)
    with pytest.raises(NotImplementedError, match="^attn_mask"):
        flashattn.sdpa(qh, qh, qh, attn_mask=torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match="^cu_seqlens_q:"):
        flashattn.flash_attn_varlen_func(q[0], q[0], q[0], torch.tensor([0, 9, 8], dtype=torch.int32),
                                         torch.tensor([0, 4, 8], dtype=torch.int32), 9, 8)


def test_cuda_tensors_without_cuda_engine_raise_not_implemented():
    if HAS_CUDA or not torch.cuda.is_available():
        pytest.skip("needs a GPU without a CUDA engine in this build")
    q = torch.randn(1, 8, 2, 64, device="cuda", dtype=torch.float16)
    with pytest.raises(NotImplementedError):
        flashattn.flash_attn_func(q, q, q)


# ----------------------------------------------------------------------------- CUDA only

@cuda_only
def test_cuda_runs_on_the_current_stream():
    """On a side stream, q is poisoned with NaN, the stream sleeps, then q gets its values: a call
    launched anywhere but on the current stream reads the NaNs (or races) and fails."""
    gen = torch.Generator().manual_seed(11)
    src = [make((4, 512, 8, 128), torch.bfloat16, "cuda", gen) for _ in range(3)]
    ref = flashattn.flash_attn_func(*src, causal=True)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        q = torch.full_like(src[0], float("nan"))
        torch.cuda._sleep(100_000_000)
        q.copy_(src[0])
        out = flashattn.flash_attn_func(q, src[1], src[2], causal=True)
        q.requires_grad_()
        out2 = flashattn.flash_attn_func(q, src[1], src[2], causal=True)
        (dq,) = torch.autograd.grad(out2, (q,), torch.ones_like(out2))
    torch.cuda.synchronize()
    assert torch.equal(out, ref)
    assert torch.isfinite(dq).all()
    assert flashattn._C.has_python_device_allocator()  # backward scratch came from torch


@cuda_only
def test_cuda_graph_capture_and_replay():
    gen = torch.Generator().manual_seed(14)
    q, k, v = (make((2, 300, 4, 64), torch.float16, "cuda", gen) for _ in range(3))
    ref = flashattn.flash_attn_func(q, k, v, causal=True)
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = flashattn.flash_attn_func(q, k, v, causal=True)
    q.copy_(make(q.shape, torch.float16, "cuda", gen))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(out, flashattn.flash_attn_func(q, k, v, causal=True))
    assert not torch.equal(out, ref)


@cuda_only
def test_cuda_graph_capture_of_the_backward():
    """On sm_90 the backward launches its dQ conversion as a programmatic dependent of the main
    kernel; captured in a CUDA graph that is a programmatic edge. Replays must give the eager
    gradients bit for bit (deterministic mode fixes every sum) and follow new inputs. Two waves
    of main blocks (8 kv tiles x 32 (batch, head) pairs), so the conversion starts beside them."""
    gen = torch.Generator().manual_seed(15)
    q, k, v = (make((4, 1024, 8, 128), torch.bfloat16, "cuda", gen).requires_grad_() for _ in range(3))
    g = make(q.shape, torch.bfloat16, "cuda", gen)

    def step():
        out = flashattn.flash_attn_func(q, k, v, causal=True, deterministic=True)
        return torch.autograd.grad(out, (q, k, v), g)

    side = torch.cuda.Stream()  # warm-up off the capturing stream, as torch.cuda.graph asks
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        grads = step()
    for seed in (16, 17):
        with torch.no_grad():
            q.copy_(make(q.shape, torch.bfloat16, "cuda", torch.Generator().manual_seed(seed)))
        for a in grads:
            a.fill_(float("nan"))
        graph.replay()
        ref = step()
        torch.cuda.synchronize()
        for name, a, b in zip(("dq", "dk", "dv"), grads, ref):
            assert torch.equal(a, b), name


@cuda_only
def test_cuda_torch_compile_inductor_fullgraph():
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = _Block(dim=256, heads=4, kv_heads=2).cuda().half()
    x = torch.randn(2, 96, 256, device="cuda", dtype=torch.float16, requires_grad=True)
    ref = model(x)
    ref_grads = torch.autograd.grad(ref.float().square().sum(), [x] + list(model.parameters()))
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(x)
    grads = torch.autograd.grad(out.float().square().sum(), [x] + list(model.parameters()))
    torch.testing.assert_close(out, ref, atol=2e-2, rtol=2e-2)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, atol=5e-2, rtol=5e-2)


@cuda_only
def test_cuda_deterministic_backward_is_bitwise_reproducible():
    gen = torch.Generator().manual_seed(12)
    q, k, v = (make((2, 300, 4, 64), torch.float16, "cuda", gen).requires_grad_() for _ in range(3))
    dout = make((2, 300, 4, 64), torch.float16, "cuda", gen)
    runs = []
    for _ in range(2):
        out = flashattn.flash_attn_func(q, k, v, deterministic=True)
        runs.append(torch.autograd.grad(out, (q, k, v), dout))
    for a, b in zip(*runs):
        assert torch.equal(a, b)


@cuda_only
def test_cuda_and_cpu_dropout_masks_agree():
    gen = torch.Generator().manual_seed(13)
    q, k, v = (make((1, 40, 2, 64), torch.float16, "cpu", gen) for _ in range(3))
    torch.manual_seed(3)
    a = flashattn.flash_attn_func(q.cuda(), k.cuda(), v.cuda(), dropout_p=0.3).cpu().float()
    torch.manual_seed(3)
    b = flashattn.flash_attn_func(q.float(), k.float(), v.float(), dropout_p=0.3)
    torch.testing.assert_close(a, b, atol=2e-2, rtol=2e-2)
