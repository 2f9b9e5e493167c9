"""flashattn.numpy (CPU engine) against the fp64 NumPy oracle; runs without torch."""
import numpy as np
import pytest

import flashattn
import flashattn.numpy as fnp
from reference import BF16, assert_close, attention_backward, attention_forward, np_dtype, varlen_split

PRECISIONS = ["fp32", "fp16", pytest.param("bf16", marks=pytest.mark.skipif(BF16 is None, reason="needs ml_dtypes"))]


def rand(rng, shape, precision, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np_dtype(precision))


def as64(x):
    return np.asarray(x).astype(np.float64)


# (B, Sq, Sk, Hq, Hkv, D, options)
CASES = [
    (2, 17, 33, 4, 4, 64, dict()),
    (1, 1, 40, 2, 2, 32, dict(causal=True)),
    (2, 33, 17, 6, 2, 72, dict(causal=True)),  # GQA, Sq > Sk: early rows see no key
    (1, 45, 45, 4, 1, 128, dict(window_size=(7, 3))),  # MQA, sliding window
    (2, 20, 29, 2, 2, 40, dict(softcap=5.0, softmax_scale=0.3)),
    (1, 24, 19, 4, 2, 64, dict(alibi_slopes="1d", causal=True)),
    (2, 13, 21, 3, 3, 16, dict(alibi_slopes="2d", window_size=(-1, 5), softcap=2.0)),
]


def materialise(opts, B, Hq, rng):
    o = dict(opts)
    if o.get("alibi_slopes") == "1d":
        o["alibi_slopes"] = rng.uniform(0.05, 0.5, Hq).astype(np.float32)
    elif o.get("alibi_slopes") == "2d":
        o["alibi_slopes"] = rng.uniform(0.05, 0.5, (B, Hq)).astype(np.float32)
    return o


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"B{c[0]}_Sq{c[1]}_Sk{c[2]}_H{c[3]}/{c[4]}_D{c[5]}_{'_'.join(c[6])}")
def test_forward_backward_against_oracle(case, precision):
    B, Sq, Sk, Hq, Hkv, D, opts = case
    rng = np.random.default_rng(hash((case[:6], precision)) % 2**32)
    opts = materialise(opts, B, Hq, rng)
    q, k, v = (rand(rng, (B, Sq, Hq, D), precision), rand(rng, (B, Sk, Hkv, D), precision),
               rand(rng, (B, Sk, Hkv, D), precision))
    dout = rand(rng, (B, Sq, Hq, D), precision)

    out, lse = fnp.forward(q, k, v, **opts)
    assert out.dtype == q.dtype and out.shape == q.shape
    assert lse.dtype == np.float32 and lse.shape == (B, Hq, Sq)
    ref_o, ref_lse = attention_forward(q, k, v, "fp64", **opts)
    naive_o, naive_lse = attention_forward(q, k, v, precision, **opts)
    assert_close(out, naive_o, ref_o, precision, "out")
    assert_close(lse, naive_lse, ref_lse, "fp32", "lse", atol_scale=10)

    dq, dk, dv = fnp.backward(dout, q, k, v, out, lse, **opts)
    ref = attention_backward(dout, q, k, v, "fp64", **opts)
    naive = attention_backward(dout, q, k, v, precision, **opts)
    for name, got, r, n in zip(("dq", "dk", "dv"), (dq, dk, dv), ref, naive):
        assert got.dtype == q.dtype
        assert_close(got, n, r, precision, name)


def test_fully_masked_rows_give_zero_and_minus_inf():
    rng = np.random.default_rng(1)
    q, k, v = rand(rng, (1, 9, 2, 32), "fp32"), rand(rng, (1, 4, 2, 32), "fp32"), rand(rng, (1, 4, 2, 32), "fp32")
    out, lse = fnp.forward(q, k, v, causal=True)  # rows 0..4 sit left of the first key
    assert np.all(out[:, :5] == 0) and np.all(np.isneginf(lse[:, :, :5]))
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(lse[:, :, 5:]))
    dq, dk, dv = fnp.backward(np.ones_like(out), q, k, v, out, lse, causal=True)
    assert np.all(dq[:, :5] == 0) and all(np.all(np.isfinite(g)) for g in (dq, dk, dv))


def test_strided_views_are_read_in_place():
    """(B, H, S, D) arrays transposed to BSHD views: same pointer and strides reach the library,
    and the result equals the one computed from contiguous copies."""
    rng = np.random.default_rng(2)
    qh, kh, vh = (rand(rng, (2, 3, 19, 32), "fp32") for _ in range(3))
    q, k, v = (x.transpose(0, 2, 1, 3) for x in (qh, kh, vh))
    seen = flashattn._C.describe(q)
    assert seen["data_ptr"] == q.__array_interface__["data"][0]
    assert seen["strides"] == tuple(s // 4 for s in q.strides) == (3 * 19 * 32, 32, 19 * 32, 1)
    out_view, lse_view = fnp.forward(q, k, v, causal=True)
    out_cont, lse_cont = fnp.forward(*(np.ascontiguousarray(x) for x in (q, k, v)), causal=True)
    np.testing.assert_array_equal(out_view, out_cont)
    np.testing.assert_array_equal(lse_view, lse_cont)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_dropout_matches_philox_oracle_and_is_reproducible(precision):
    rng = np.random.default_rng(3)
    B, Sq, Sk, Hq, Hkv, D = 2, 21, 26, 4, 2, 32
    q, k, v = rand(rng, (B, Sq, Hq, D), precision), rand(rng, (B, Sk, Hkv, D), precision), rand(rng, (B, Sk, Hkv, D), precision)
    dout = rand(rng, (B, Sq, Hq, D), precision)
    opts = dict(dropout_p=0.3, seed=0x1234_5678_9ABC, offset=7, causal=True)
    out, lse = fnp.forward(q, k, v, **opts)
    ref_o, ref_lse = attention_forward(q, k, v, "fp64", **opts)
    naive_o, _ = attention_forward(q, k, v, precision, **opts)
    assert_close(out, naive_o, ref_o, precision, "out")
    grads = fnp.backward(dout, q, k, v, out, lse, **opts)
    ref = attention_backward(dout, q, k, v, "fp64", **opts)
    naive = attention_backward(dout, q, k, v, precision, **opts)
    for name, got, r, n in zip(("dq", "dk", "dv"), grads, ref, naive):
        assert_close(got, n, r, precision, name)
    again, _ = fnp.forward(q, k, v, **opts)
    np.testing.assert_array_equal(out, again)
    other, _ = fnp.forward(q, k, v, **{**opts, "seed": opts["seed"] + 1})
    assert not np.array_equal(out, other)
    no_drop, _ = fnp.forward(q, k, v, causal=True)
    assert not np.allclose(out, no_drop)


def test_dropout_without_seed_uses_numpy_global_generator():
    rng = np.random.default_rng(4)
    q = rand(rng, (1, 8, 2, 16), "fp32")
    np.random.seed(11)
    a, _ = fnp.forward(q, q, q, dropout_p=0.5)
    np.random.seed(11)
    b, _ = fnp.forward(q, q, q, dropout_p=0.5)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="seed"):
        fnp.backward(a, q, q, q, a, _, dropout_p=0.5)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_varlen_matches_per_sequence_oracle(precision):
    rng = np.random.default_rng(5)
    lens_q, lens_k = [5, 0, 17, 1], [9, 3, 17, 0]  # an empty query and an empty key sequence
    cu_q = np.concatenate([[0], np.cumsum(lens_q)]).astype(np.int32)
    cu_k = np.concatenate([[0], np.cumsum(lens_k)]).astype(np.int32)
    Hq, Hkv, D = 4, 2, 48
    q = rand(rng, (cu_q[-1], Hq, D), precision)
    k = rand(rng, (cu_k[-1], Hkv, D), precision)
    v = rand(rng, (cu_k[-1], Hkv, D), precision)
    dout = rand(rng, q.shape, precision)
    opts = dict(causal=True, softcap=3.0)
    out, lse = fnp.varlen_forward(q, k, v, cu_q, cu_k, max(lens_q), max(lens_k), **opts)
    assert lse.shape == (Hq, cu_q[-1])
    dq, dk, dv = fnp.varlen_backward(dout, q, k, v, out, lse, cu_q, cu_k, max(lens_q), max(lens_k), **opts)
    for i, (qs, ks, vs, ds) in enumerate(zip(varlen_split(q, cu_q), varlen_split(k, cu_k), varlen_split(v, cu_k), varlen_split(dout, cu_q))):
        rq, rk = slice(cu_q[i], cu_q[i + 1]), slice(cu_k[i], cu_k[i + 1])
        if qs.shape[1] == 0:
            continue
        ref_o, ref_lse = attention_forward(qs, ks, vs, "fp64", **opts)
        naive_o, naive_lse = attention_forward(qs, ks, vs, precision, **opts)
        assert_close(out[rq][None], naive_o, ref_o, precision, f"out[{i}]")
        assert_close(lse[:, rq][None], naive_lse, ref_lse, "fp32", f"lse[{i}]", atol_scale=10)
        ref = attention_backward(ds, qs, ks, vs, "fp64", **opts)
        naive = attention_backward(ds, qs, ks, vs, precision, **opts)
        assert_close(dq[rq][None], naive[0], ref[0], precision, f"dq[{i}]")
        if ks.shape[1]:
            assert_close(dk[rk][None], naive[1], ref[1], precision, f"dk[{i}]")
            assert_close(dv[rk][None], naive[2], ref[2], precision, f"dv[{i}]")
    assert np.all(dk[cu_k[1]:cu_k[2]] == 0)  # keys of the sequence without queries get no gradient


def test_merge_states_equals_attention_over_all_keys():
    rng = np.random.default_rng(6)
    q, k, v = rand(rng, (2, 11, 3, 32), "fp32"), rand(rng, (2, 30, 3, 32), "fp32"), rand(rng, (2, 30, 3, 32), "fp32")
    full_o, full_lse = fnp.forward(q, k, v)
    parts = [fnp.forward(q, k[:, a:b], v[:, a:b]) for a, b in ((0, 7), (7, 30))]
    out, lse = fnp.merge_states(np.stack([p[0] for p in parts]), np.stack([p[1] for p in parts]))
    np.testing.assert_allclose(out, full_o, atol=2e-6)
    np.testing.assert_allclose(lse, full_lse, atol=2e-6)


# ----------------------------------------------------------------------------- errors

def _qkv(rng=np.random.default_rng(7), B=1, S=8, H=2, D=32, dtype=np.float32):
    return (rng.standard_normal((B, S, H, D)).astype(dtype) for _ in range(3))


@pytest.mark.parametrize("mutate, argument, words", [
    (lambda q, k, v: (q[0], k, v), "q", "dimensions"),
    (lambda q, k, v: (q, k[..., :16], v), "k", "head_dim"),
    (lambda q, k, v: (q, k, v[:, :, :1]), "v", "heads"),
    (lambda q, k, v: (q.astype(np.float64), k, v), "q", "float64"),
    (lambda q, k, v: (q, k.astype(np.float16), v), "k", "dtype"),
    (lambda q, k, v: (q[..., ::2], k[..., ::2], v[..., ::2]), "q", "contiguous"),
    (lambda q, k, v: (q[..., :12], k[..., :12], v[..., :12]), "q", "multiple of 8"),
    (lambda q, k, v: (q, [[1.0]], v), "k", "numpy"),
])
def test_bad_inputs_raise_value_error_naming_the_argument(mutate, argument, words):
    q, k, v = mutate(*_qkv())
    with pytest.raises(ValueError, match=words) as e:
        fnp.forward(q, k, v)
    assert str(e.value).startswith(argument + ":")
    assert e.value.argument == argument


@pytest.mark.parametrize("kwargs, argument", [
    (dict(dropout_p=1.0, seed=1), "dropout_p"),
    (dict(softcap=-1.0), "softcap"),
    (dict(window_size=(-2, -1)), "window_left"),
    (dict(alibi_slopes=np.ones(3, np.float32)), "alibi_slopes"),
    (dict(alibi_slopes=np.ones(2, np.float64)), "alibi_slopes"),
    (dict(softmax_scale=float("inf")), "softmax_scale"),
])
def test_bad_options_raise_value_error_naming_the_option(kwargs, argument):
    q, k, v = _qkv()
    with pytest.raises(ValueError) as e:
        fnp.forward(q, k, v, **kwargs)
    assert e.value.argument == argument, str(e.value)


def test_bad_cu_seqlens_raise_value_error():
    q, k, v = (x[0] for x in _qkv())
    good = np.array([0, 3, 8], np.int32)
    with pytest.raises(ValueError, match="^cu_seqlens_q:"):
        fnp.varlen_forward(q, k, v, np.array([0, 5, 3], np.int32), good, 8, 8)
    with pytest.raises(ValueError, match="^max_seqlen_k:"):
        fnp.varlen_forward(q, k, v, good, good, 8, 4)
    with pytest.raises(ValueError, match="^cu_seqlens_k:"):
        fnp.varlen_forward(q, k, v, good, good.astype(np.int64), 8, 8)


def test_a_rejected_call_writes_nothing_and_backend_is_cpu():
    q, k, v = _qkv()
    assert flashattn.backend_name(q) == "cpu"
    out = np.full(q.shape, 7.0, np.float32)
    lse = np.full((1, 2, 8), 7.0, np.float32)
    with pytest.raises(ValueError):
        flashattn._C.forward(q, k[..., :16], v, out, lse, None, False, -1, -1, 0.0, None, 0.0, 0, 0, 0)
    assert np.all(out == 7.0) and np.all(lse == 7.0)
    ro = np.empty_like(q)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="^out: .*read-only"):
        flashattn._C.forward(q, k, v, ro, None, None, False, -1, -1, 0.0, None, 0.0, 0, 0, 0)
