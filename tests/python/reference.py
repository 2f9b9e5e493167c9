"""Naive standard attention in NumPy, the oracle of the Python tests.

``attention_forward`` / ``attention_backward`` take (batch, seqlen, heads, head_dim) arrays and
every option of the library (scale, causal / sliding window aligned bottom-right, softcap, ALiBi,
GQA, dropout with the library's Philox mask). ``precision="fp64"`` is the oracle; a low-precision
name ("fp16", "bf16", "fp32") rounds every materialised tensor (S, P, P_drop, O, dP, dS, ...) to
that dtype, which gives the naive baseline of the error standard:

    err(engine, oracle) <= 2 * err(naive in the input dtype, oracle) + atol.
"""

import numpy as np

try:
    import ml_dtypes

    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:  # bf16 cases skip without it
    ml_dtypes = None
    BF16 = None

ATOL = {"fp32": 2e-5, "fp16": 2e-3, "bf16": 1.6e-2}  # tests/common/error_standard.cpp


def np_dtype(name):
    return {"fp32": np.dtype(np.float32), "fp16": np.dtype(np.float16), "bf16": BF16}[name]


def rounder(precision):
    if precision == "fp64":
        return lambda x: x
    dt = np_dtype(precision)
    return lambda x: np.asarray(x).astype(dt).astype(np.float64)


# ----------------------------------------------------------------------------- Philox dropout

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)
_LO = np.uint64(0xFFFFFFFF)


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Vectorised Philox4x32-10 (src/core/philox.hpp); arrays of uint32."""
    c = [np.asarray(x, np.uint32) for x in (c0, c1, c2, c3)]
    k0, k1 = np.uint32(k0), np.uint32(k1)
    with np.errstate(over="ignore"):
        for _ in range(10):
            p0 = _M0 * c[0].astype(np.uint64)
            p1 = _M1 * c[2].astype(np.uint64)
            hi0, lo0 = (p0 >> np.uint64(32)).astype(np.uint32), (p0 & _LO).astype(np.uint32)
            hi1, lo1 = (p1 >> np.uint64(32)).astype(np.uint32), (p1 & _LO).astype(np.uint32)
            c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
            k0 = np.uint32(k0 + _W0)
            k1 = np.uint32(k1 + _W1)
    return c


def dropout_keep(bh, sq, sk, p, seed, offset):
    """Boolean keep mask (sq, sk) of query rows 0..sq-1 of (batch*heads_q + head) = bh."""
    seed, offset = int(seed), int(offset)
    k0 = seed & 0xFFFFFFFF
    k1 = ((seed >> 32) ^ (offset >> 32)) & 0xFFFFFFFF
    off = offset & 0xFFFFFFFF
    t = float(np.float32(p)) * 4294967296.0
    threshold = 0xFFFFFFFF if t >= 4294967295.0 else int(t + 0.5)
    rows, cols = np.meshgrid(np.arange(sq, dtype=np.uint32), np.arange(sk, dtype=np.uint32),
                             indexing="ij")
    words = philox4x32_10(cols >> np.uint32(2), rows, np.full_like(rows, bh), np.full_like(rows, off),
                          k0, k1)
    w = np.choose((cols & np.uint32(3)).astype(np.int64), words)
    return w >= np.uint32(threshold)


# ----------------------------------------------------------------------------- attention

def _visible(sq, sk, wl, wr):
    i = np.arange(sq)[:, None]
    j = np.arange(sk)[None, :]
    diag = i + sk - sq
    vis = np.ones((sq, sk), bool)
    if wl >= 0:
        vis &= j >= diag - wl
    if wr >= 0:
        vis &= j <= diag + wr
    return vis


def _alibi_bias(slope, sq, sk):
    i = np.arange(sq)[:, None]
    j = np.arange(sk)[None, :]
    return -slope * np.abs(i + sk - sq - j).astype(np.float64)


def _head_problem(q, k, v, b, h, opts):
    """Per (batch, q-head) matrices S (logits), P, keep-scale; all fp64 or rounded."""
    rnd = opts["rnd"]
    hq, hk = q.shape[2], k.shape[2]
    kh = h // (hq // hk)
    Q = q[b, :, h].astype(np.float64)
    K = k[b, :, kh].astype(np.float64)
    V = v[b, :, kh].astype(np.float64)
    sq, sk = Q.shape[0], K.shape[0]
    scale = opts["scale"] if opts["scale"] is not None else 1.0 / np.sqrt(q.shape[3])
    raw = Q @ K.T
    if opts["softcap"] > 0:
        y = opts["softcap"] * np.tanh(raw * scale / opts["softcap"])
    else:
        y = raw * scale
    S = y.copy()
    if opts["alibi"] is not None:
        a = np.asarray(opts["alibi"], np.float64)
        slope = a[h] if a.ndim == 1 else a[b, h]
        S = S + _alibi_bias(slope, sq, sk)
    S = rnd(S)
    wl, wr = opts["window"]
    if opts["causal"]:
        wr = 0
    vis = _visible(sq, sk, wl, wr)
    S = np.where(vis, S, -np.inf)
    m = S.max(axis=1, keepdims=True) if sk > 0 else np.full((sq, 1), -np.inf)
    any_vis = np.isfinite(m)
    m_safe = np.where(any_vis, m, 0.0)
    e = np.where(vis, np.exp(S - m_safe), 0.0)
    l = e.sum(axis=1, keepdims=True)
    P = rnd(np.where(any_vis, e / np.where(l > 0, l, 1.0), 0.0))
    lse = np.where(any_vis[:, 0], m_safe[:, 0] + np.log(np.where(l[:, 0] > 0, l[:, 0], 1.0)), -np.inf)
    keep = np.ones((sq, sk))
    if opts["dropout_p"] > 0:
        mask = dropout_keep(b * hq + h, sq, sk, opts["dropout_p"], opts["seed"], opts["offset"])
        keep = np.where(mask, 1.0 / (1.0 - np.float64(np.float32(opts["dropout_p"]))), 0.0)
    return dict(Q=Q, K=K, V=V, y=y, P=P, keep=keep, lse=lse, scale=scale, kh=kh)


def _opts(precision, softmax_scale, causal, window_size, softcap, alibi_slopes, dropout_p, seed,
          offset):
    return dict(rnd=rounder(precision), scale=softmax_scale, causal=causal, window=window_size,
                softcap=softcap, alibi=alibi_slopes, dropout_p=dropout_p, seed=seed, offset=offset)


def attention_forward(q, k, v, precision="fp64", softmax_scale=None, causal=False,
                      window_size=(-1, -1), softcap=0.0, alibi_slopes=None, dropout_p=0.0, seed=0,
                      offset=0):
    """Returns (out (B,Sq,Hq,D), lse (B,Hq,Sq)) in float64."""
    o = _opts(precision, softmax_scale, causal, window_size, softcap, alibi_slopes, dropout_p,
              seed, offset)
    B, Sq, Hq, D = q.shape
    out = np.zeros((B, Sq, Hq, D))
    lse = np.zeros((B, Hq, Sq))
    for b in range(B):
        for h in range(Hq):
            t = _head_problem(q, k, v, b, h, o)
            Pd = o["rnd"](t["P"] * t["keep"])
            out[b, :, h] = o["rnd"](Pd @ t["V"])
            lse[b, h] = t["lse"]
    return out, lse


def attention_backward(dout, q, k, v, precision="fp64", softmax_scale=None, causal=False,
                       window_size=(-1, -1), softcap=0.0, alibi_slopes=None, dropout_p=0.0, seed=0,
                       offset=0):
    """Returns (dq, dk, dv) in float64 (dk, dv summed over each KV head's query group)."""
    o = _opts(precision, softmax_scale, causal, window_size, softcap, alibi_slopes, dropout_p,
              seed, offset)
    rnd = o["rnd"]
    B, Sq, Hq, D = q.shape
    dq = np.zeros(q.shape)
    dk = np.zeros(k.shape)
    dv = np.zeros(v.shape)
    for b in range(B):
        for h in range(Hq):
            t = _head_problem(q, k, v, b, h, o)
            dO = dout[b, :, h].astype(np.float64)
            Pd = rnd(t["P"] * t["keep"])
            dv[b, :, t["kh"]] += rnd(Pd.T @ dO)
            dP = rnd(rnd(dO @ t["V"].T) * t["keep"])
            dS = rnd(t["P"] * (dP - (dP * t["P"]).sum(axis=1, keepdims=True)))
            if o["softcap"] > 0:
                th = t["y"] / o["softcap"]
                dRaw = rnd(dS * t["scale"] * (1.0 - th * th))
            else:
                dRaw = rnd(dS * t["scale"])
            dq[b, :, h] = rnd(dRaw @ t["K"])
            dk[b, :, t["kh"]] += rnd(dRaw.T @ t["Q"])
    return dq, dk, dv


def varlen_split(x, cu):
    """The sequences of a packed (total, H, D) tensor as (1, len, H, D) arrays."""
    return [x[cu[i]:cu[i + 1]][None] for i in range(len(cu) - 1)]


def error_standard(engine, naive, oracle, precision, atol_scale=1.0):
    """(ok, engine_err, bound). -inf in the oracle must be -inf in the engine; NaN fails."""
    engine = np.asarray(engine, np.float64)
    naive = np.asarray(naive, np.float64)
    oracle = np.asarray(oracle, np.float64)
    if np.isnan(engine).any():
        return False, float("nan"), 0.0
    inf = np.isinf(oracle)
    if not np.array_equal(np.isinf(engine), inf) or not np.array_equal(engine[inf], oracle[inf]):
        return False, float("inf"), 0.0
    fin = ~inf
    e = float(np.max(np.abs(engine[fin] - oracle[fin]), initial=0.0))
    n = float(np.max(np.abs(naive[fin] - oracle[fin]), initial=0.0))
    bound = 2.0 * n + ATOL[precision] * atol_scale
    return e <= bound, e, bound


def assert_close(engine, naive, oracle, precision, what, atol_scale=1.0):
    ok, e, bound = error_standard(engine, naive, oracle, precision, atol_scale)
    assert ok, f"{what}: error {e:.3g} exceeds 2 x naive {precision} error + atol = {bound:.3g}"
