#!/usr/bin/env python3
"""flashattn beside every torch SDPA backend that runs, in one process.

Shapes follow /work/shared/anchors/h200-sdpa-2026-11-21.md:
- training: 16k tokens per batch (batch = 16384 / seqlen), hidden 2048 (heads = 2048 / hdim),
  bf16, hdim 64/128/256, causal and not; forward, and forward+backward with
  bwd TFLOP/s = 2.5 * fwd_flops / (t_fwdbwd - t_fwd); fwd_flops = 4*B*H*S^2*D (halved if causal).
- decode: 1 query token, 32 query heads over 8 KV heads, hdim 128, contiguous cache;
  GB/s = K+V bytes / time.
All tensors live in (batch, seqlen, heads, headdim) memory; SDPA backends get the (B, H, S, D)
transposed views (no copies), flashattn the BSHD tensors. Times: median of CUDA-event timings
(wall clock on the CPU). Peers: fa2 = SDPA FLASH_ATTENTION, cudnn = CUDNN_ATTENTION,
efficient = EFFICIENT_ATTENTION, math = MATH (skipped where it would need > --math-max-gib).

    python bench/compare_torch.py --quick --json out.json            # ~1 minute on a GPU
    python bench/compare_torch.py --device cpu --quick               # small shapes on the CPU
    python bench/compare_torch.py --overhead-only                    # Python overhead per call

Run with flashattn importable (pip install . or PYTHONPATH=<build>/python).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

try:
    import flashattn
except ImportError:  # run from a checkout: try the newest build tree
    import glob

    _repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    _found = glob.glob(os.path.join(_repo, "build*", "python", "flashattn", "_C*.so"))
    if not _found:
        raise
    sys.path.insert(0, os.path.dirname(os.path.dirname(max(_found, key=os.path.getmtime))))
    import flashattn

PEERS = {
    "fa2": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


# ----------------------------------------------------------------------------- timing

class Timer:
    def __init__(self, device, warmup, reps, budget_s):
        self.cuda = device.startswith("cuda")
        self.warmup, self.reps, self.budget_s = warmup, reps, budget_s

    def __call__(self, fn):
        """Median seconds of fn(); fewer repetitions when one call is slow (budget_s per case)."""
        t0 = time.perf_counter()
        fn()
        self.sync()
        first = time.perf_counter() - t0
        for _ in range(self.warmup - 1):
            fn()
        reps = max(3, min(self.reps, int(self.budget_s / max(first, 1e-6))))
        times = []
        if self.cuda:
            evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
            for a, b in evs:
                a.record()
                fn()
                b.record()
            torch.cuda.synchronize()
            times = [a.elapsed_time(b) * 1e-3 for a, b in evs]
        else:
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
        return statistics.median(times)

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()


def run_or_none(fn):
    try:
        return fn()
    except (RuntimeError, NotImplementedError, ValueError, torch.cuda.OutOfMemoryError) as e:
        msg = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return msg


# ----------------------------------------------------------------------------- training shapes

def training_case(args, timer, hdim, causal, seqlen):
    dev, dtype = args.device, DTYPES[args.dtype]
    batch = max(1, args.tokens // seqlen)
    heads = args.hidden // hdim
    shape = (batch, seqlen, heads, hdim)
    gen = torch.Generator(device=dev).manual_seed(0)
    q, k, v = (torch.randn(shape, device=dev, dtype=dtype, generator=gen).requires_grad_() for _ in range(3))
    dout = torch.randn(shape, device=dev, dtype=dtype, generator=gen)
    flops = 4.0 * batch * heads * seqlen * seqlen * hdim / (2 if causal else 1)
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
    dot = dout.transpose(1, 2)

    impls = {"ours": (lambda: flashattn.flash_attn_func(q, k, v, causal=causal), dout)}
    for name, backend in PEERS.items():
        if name not in args.peers:
            continue
        if name == "math":
            s_bytes = batch * heads * seqlen * seqlen * 4 * 3  # S, P in fp32 and their grads
            if s_bytes > args.math_max_gib * 2**30:
                continue

        def peer(backend=backend):
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)

        impls[name] = (peer, dot)

    row = {"hdim": hdim, "causal": causal, "seqlen": seqlen, "batch": batch, "heads": heads, "fwd_flops": flops,
           "rounds": args.rounds}
    # Every implementation is timed once per round, in turn, and keeps its best round: whoever
    # runs first after a change of shape or clock state does not carry that alone.
    best = {name: [None, None] for name in impls}
    for _ in range(args.rounds):
        for name, (fwd, grad) in impls.items():
            def fwd_only(fwd=fwd):
                with torch.no_grad():
                    fwd()

            def fwd_bwd(fwd=fwd, grad=grad):
                # Fresh gradients each call: accumulating into .grad would add three elementwise
                # adds per call to what is timed (on the CPU, OpenMP-parallel ones whose spinning
                # workers then compete with the next call's threads).
                q.grad = k.grad = v.grad = None
                torch.autograd.backward(fwd(), grad, inputs=[q, k, v])

            b = best[name]
            if isinstance(b[0], str):
                continue  # it failed in an earlier round
            t_fwd = run_or_none(lambda: timer(fwd_only))
            t_fb = run_or_none(lambda: timer(fwd_bwd)) if (args.backward and isinstance(t_fwd, float)) else None
            b[0] = t_fwd if not isinstance(b[0], float) or not isinstance(t_fwd, float) else min(b[0], t_fwd)
            b[1] = t_fb if not isinstance(b[1], float) or not isinstance(t_fb, float) else min(b[1], t_fb)
            q.grad = k.grad = v.grad = None
    for name in impls:
        t_fwd, t_fb = best[name]
        entry = {}
        if isinstance(t_fwd, float):
            entry["fwd_ms"] = t_fwd * 1e3
            entry["fwd_tflops"] = flops / t_fwd * 1e-12
        else:
            entry["error"] = t_fwd
        if isinstance(t_fb, float):
            entry["fwdbwd_ms"] = t_fb * 1e3
            t_bwd = t_fb - t_fwd
            entry["bwd_tflops"] = 2.5 * flops / t_bwd * 1e-12 if t_bwd > 0 else None
        elif isinstance(t_fb, str):
            entry["bwd_error"] = t_fb
        row[name] = entry
    return row


# ----------------------------------------------------------------------------- decode shapes

def decode_case(args, timer, batch, seqlen_k, hq=32, hkv=8, hdim=128):
    dev, dtype = args.device, DTYPES[args.dtype]
    gen = torch.Generator(device=dev).manual_seed(1)
    q = torch.randn(batch, 1, hq, hdim, device=dev, dtype=dtype, generator=gen)
    k = torch.randn(batch, seqlen_k, hkv, hdim, device=dev, dtype=dtype, generator=gen)
    v = torch.randn(batch, seqlen_k, hkv, hdim, device=dev, dtype=dtype, generator=gen)
    kv_bytes = 2 * k.numel() * k.element_size()
    try:  # another module of the package may provide the KV-cache decode path
        with_kvcache = flashattn.flash_attn_with_kvcache
    except AttributeError:
        with_kvcache = None
    row = {"batch": batch, "seqlen_k": seqlen_k, "heads_q": hq, "heads_kv": hkv, "hdim": hdim,
           "kv_bytes": kv_bytes}
    if with_kvcache is not None:
        seqlens = torch.full((batch,), seqlen_k, dtype=torch.int32, device=dev)
        ours = lambda: with_kvcache(q, k, v, cache_seqlens=seqlens)  # noqa: E731
        row["ours_api"] = "flash_attn_with_kvcache"
    else:
        ours = lambda: flashattn.flash_attn_func(q, k, v)  # noqa: E731
        row["ours_api"] = "flash_attn_func(seqlen_q=1)"
    impls = {"ours": ours}
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
    for name, backend in PEERS.items():
        if name not in args.peers:
            continue

        def peer(backend=backend):
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(qt, kt, vt, enable_gqa=True)

        impls[name] = peer
    with torch.no_grad():
        for name, fn in impls.items():
            t = run_or_none(lambda: timer(fn))
            row[name] = ({"us": t * 1e6, "gbps": kv_bytes / t * 1e-9} if isinstance(t, float) else {"error": t})
    return row


# ----------------------------------------------------------------------------- overhead

def overhead(args, n=None):
    """Per-call cost of the Python layer on a tiny shape: flash_attn_func against the raw binding
    with preallocated outputs (the C++ library + launch), plus the kernel time on a GPU."""
    dev = args.device
    n = n or (2000 if dev.startswith("cuda") else 300)
    dtype = torch.float16 if dev.startswith("cuda") else torch.float32
    q = torch.randn(1, 16, 2, 64, device=dev, dtype=dtype)
    out = torch.empty_like(q)
    lse = torch.empty(1, 2, 16, device=dev, dtype=torch.float32)
    stream = torch.cuda.current_stream().cuda_stream if dev.startswith("cuda") else 0
    from flashattn import _C

    def raw():
        _C.forward(q, q, q, out, lse, None, False, -1, -1, 0.0, None, 0.0, 0, 0, stream)

    def wrapper():
        flashattn.flash_attn_func(q, q, q)

    qg = q.clone().requires_grad_()

    def wrapper_grad():
        flashattn.flash_attn_func(qg, qg, qg)

    qh = q.transpose(1, 2)  # an SDPA-layout view of the same memory

    def sdpa_view():
        flashattn.sdpa(qh, qh, qh)

    def loop_time(fn):
        for _ in range(n // 10):
            fn()
        if dev.startswith("cuda"):
            torch.cuda.synchronize()
        best = float("inf")
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(n):
                fn()
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, (time.perf_counter() - t) / n)
        return best

    res = {name: loop_time(fn) * 1e6 for name, fn in
           (("raw_binding_us", raw), ("flash_attn_func_us", wrapper),
            ("flash_attn_func_requires_grad_fwd_us", wrapper_grad), ("sdpa_us", sdpa_view))}
    res["python_overhead_us"] = res["flash_attn_func_us"] - res["raw_binding_us"]
    # The same wrapper with the library call replaced by a no-op: everything the Python layer
    # does per call (argument handling, output allocation, stream lookup), free of kernel noise.
    real, real_bhsd = _C.forward, _C.forward_bhsd
    try:
        _C.forward = _C.forward_bhsd = lambda *a: None
        res["wrapper_without_library_us"] = loop_time(wrapper) * 1e6
        res["sdpa_without_library_us"] = loop_time(sdpa_view) * 1e6
    finally:
        _C.forward, _C.forward_bhsd = real, real_bhsd
    # Reading one tensor's pointer/sizes/strides in C++ (plus a backend look-up), five times: what
    # every forward binding call pays for q, k, v, out, lse.
    res["tensor_conversion_5x_us"] = loop_time(
        lambda: (_C.backend_name(q), _C.backend_name(q), _C.backend_name(q), _C.backend_name(q),
                 _C.backend_name(q))) * 1e6
    if dev.startswith("cuda"):
        # GPU time of one call without launch gaps: 50 calls captured in a CUDA graph, replayed
        # between CUDA events. Events around single eager calls also count the launch latency.
        timer = Timer(dev, 20, 200, 1.0)
        res["event_timed_single_call_us"] = timer(raw) * 1e6
        try:
            graph = torch.cuda.CUDAGraph()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                raw_on = lambda: _C.forward(q, q, q, out, lse, None, False, -1, -1, 0.0, None, 0.0, 0, 0,  # noqa: E731
                                            torch.cuda.current_stream().cuda_stream)
                raw_on()
                with torch.cuda.graph(graph):
                    for _ in range(50):
                        raw_on()
            torch.cuda.synchronize()
            res["kernel_us"] = timer(graph.replay) * 1e6 / 50
            res["flash_attn_func_minus_kernel_us"] = res["flash_attn_func_us"] - res["kernel_us"]
        except Exception as e:  # noqa: BLE001 - a measurement, never a reason to stop the bench
            res["kernel_us_error"] = str(e)[:200]
    res["shape"] = list(q.shape)
    res["dtype"] = str(dtype)
    return res


# ----------------------------------------------------------------------------- main

def fmt(x, width=7, prec=None):
    if not isinstance(x, (int, float)) or x is None:
        return f"{'-':>{width}}"
    if prec is None:
        prec = 0 if abs(x) >= 10 else 2
    return f"{x:{width}.{prec}f}"


def print_training(rows, names):
    cols = " ".join(f"{n + ' fwd':>13} {n + ' bwd':>13}" for n in names)
    print(f"\n{'hdim':>4} {'causal':>6} {'seqlen':>6} {cols}  ours/fa2 fwd,bwd  ours/cudnn fwd,bwd")
    for r in rows:
        cells = []
        for n in names:
            e = r.get(n, {})
            cells.append(f"{fmt(e.get('fwd_tflops'), 13)} {fmt(e.get('bwd_tflops'), 13)}")
        ratios = []
        for peer in ("fa2", "cudnn"):
            o, p = r.get("ours", {}), r.get(peer, {})
            rf = o["fwd_tflops"] / p["fwd_tflops"] if o.get("fwd_tflops") and p.get("fwd_tflops") else None
            rb = o["bwd_tflops"] / p["bwd_tflops"] if o.get("bwd_tflops") and p.get("bwd_tflops") else None
            r[f"ours_over_{peer}"] = {"fwd": rf, "bwd": rb}
            ratios.append(f"{fmt(rf, 5, 2)},{fmt(rb, 5, 2)}")
        print(f"{r['hdim']:>4} {str(r['causal']):>6} {r['seqlen']:>6} {' '.join(cells)}  {ratios[0]:>16}  {ratios[1]:>18}")


def print_decode(rows, names):
    if rows:
        print(f"\nDecode (ours = {rows[0].get('ours_api')}):", end="")
    print(f"\n{'batch':>5} {'seqlen_k':>8} " + " ".join(f"{n + ' us':>10} {n + ' GB/s':>10}" for n in names) + "  ours/fa2 ours/cudnn (speed)")
    for r in rows:
        cells = " ".join(f"{fmt(r.get(n, {}).get('us'), 10, 1)} {fmt(r.get(n, {}).get('gbps'), 10)}" for n in names)
        rat = []
        for peer in ("fa2", "cudnn"):
            o, p = r.get("ours", {}).get("us"), r.get(peer, {}).get("us")
            x = p / o if o and p else None
            r[f"ours_over_{peer}"] = x
            rat.append(fmt(x, 8, 2))
        print(f"{r['batch']:>5} {r['seqlen_k']:>8} {cells}  {rat[0]} {rat[1]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--dtype", choices=DTYPES, default=None, help="bf16 on cuda, fp32 on cpu by default")
    ap.add_argument("--quick", action="store_true", help="a ~one-minute subset")
    ap.add_argument("--json", default=None, help="write results here")
    ap.add_argument("--hdims", default=None, help="comma list (default 64,128,256)")
    ap.add_argument("--seqlens", default=None, help="comma list (default 512..16384)")
    ap.add_argument("--peers", default="fa2,cudnn,efficient,math")
    ap.add_argument("--no-backward", dest="backward", action="store_false")
    ap.add_argument("--no-decode", dest="decode", action="store_false")
    ap.add_argument("--no-training", dest="training", action="store_false")
    ap.add_argument("--overhead-only", action="store_true")
    ap.add_argument("--math-max-gib", type=float, default=16.0)
    ap.add_argument("--rounds", type=int, default=2,
                    help="training cells: interleaved rounds over all implementations, best round kept")
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    args.dtype = args.dtype or ("bf16" if cuda else "fp32")
    args.peers = [p for p in args.peers.split(",") if p]
    if cuda:
        args.tokens, args.hidden = 16384, 2048
        hdims, seqlens = [64, 128, 256], [512, 1024, 2048, 4096, 8192, 16384]
        decode = [(1, 8192), (1, 65536), (8, 8192), (32, 4096), (64, 16384), (1, 131072)]
        if args.quick:
            hdims, seqlens, decode = [64, 128], [1024, 4096], [(1, 8192), (8, 8192), (32, 4096)]
        # reps x rounds stays ~30 calls per implementation and cell.
        timer = Timer(args.device, warmup=3, reps=max(10, 30 // max(1, args.rounds)),
                      budget_s=(0.5 if args.quick else 1.5) / max(1, args.rounds))
    else:  # CPU: small shapes so the check finishes in a minute on two cores
        args.tokens, args.hidden = 1024, 256
        hdims, seqlens = [64, 128], [128, 512]
        decode = [(1, 2048), (4, 1024)]
        if args.quick:
            hdims, seqlens, decode = [64], [128, 256], [(1, 2048)]
        timer = Timer(args.device, warmup=1, reps=5, budget_s=0.5)
        args.peers = [p for p in args.peers if p in ("fa2", "math")]  # the others are CUDA-only
        args.math_max_gib = min(args.math_max_gib, 2.0)
    if args.hdims:
        hdims = [int(x) for x in args.hdims.split(",")]
    if args.seqlens:
        seqlens = [int(x) for x in args.seqlens.split(",")]

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(args.device) if cuda else (platform.processor() or platform.machine()),
        "device_kind": args.device,
        "cpu_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "flashattn": flashattn.__version__,
        "flashattn_backend": flashattn.backend_name(torch.empty(1, 1, 1, 64, device=args.device, dtype=DTYPES[args.dtype])),
        "python": platform.python_version(),
        "dtype": args.dtype,
        "quick": args.quick,
        "timing": ("median of CUDA events" if cuda else "median of wall clock") +
                  f", best of {args.rounds} interleaved rounds (training)",
    }
    print(f"# {meta['device']} | torch {meta['torch']} | CUDA {meta['cuda']} | cuDNN {meta['cudnn']} | "
          f"flashattn {meta['flashattn']} ({meta['flashattn_backend']}) | {args.dtype} | {meta['date']}")
    result = {"meta": meta, "training": [], "decode": [], "overhead": None}
    names = ["ours"] + [p for p in PEERS if p in args.peers]

    result["overhead"] = overhead(args)
    ov = result["overhead"]
    print("\nPer-call times, tiny shape %s %s: raw binding %.2f us, flash_attn_func %.2f us (+%.2f us), "
          "requires_grad fwd %.2f us, sdpa %.2f us%s" % (
              ov["shape"], ov["dtype"], ov["raw_binding_us"], ov["flash_attn_func_us"], ov["python_overhead_us"],
              ov["flash_attn_func_requires_grad_fwd_us"], ov["sdpa_us"],
              f", kernel (CUDA graph of 50 calls) {ov['kernel_us']:.2f} us" if "kernel_us" in ov else ""))
    print("Python layer alone (library call stubbed): flash_attn_func %.2f us, sdpa %.2f us; "
          "C++ tensor conversion x5 (with backend look-up) %.2f us" % (
              ov["wrapper_without_library_us"], ov["sdpa_without_library_us"], ov["tensor_conversion_5x_us"]))

    if not args.overhead_only:
        if args.training:
            for hdim in hdims:
                for causal in (False, True):
                    for s in seqlens:
                        row = training_case(args, timer, hdim, causal, s)
                        result["training"].append(row)
                        print(".", end="", flush=True)
            print_training(result["training"], names)
        if args.decode:
            for b, s in decode:
                result["decode"].append(decode_case(args, timer, b, s))
            print_decode(result["decode"], names)

    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1, default=str)
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
