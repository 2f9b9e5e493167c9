#!/usr/bin/env python3
"""Decode peers in the same run as flashattn's decode_bench: torch SDPA's cuDNN and flash
(FlashAttention-2) backends on a contiguous cache, GQA 32/8, head dim 128, bf16, one query token.

    decode_bench > ours.csv                  # examples/decode_bench (C++, flashattn)
    python3 bench/compare_decode.py --ours ours.csv > decode_table.md

--variant NAME=FILE (repeatable) adds other decode_bench runs of the same session (e.g. a build
of another version of the kernel) as a second table of graph and eager times beside cuDNN's,
measured once for both tables.

GB/s = K+V bytes of the cache (2 * B * Sk * Hkv * D * 2) / median CUDA-event time, the anchors'
convention. The cache is a (B, Sk, Hkv, D) tensor passed to SDPA as its (B, Hkv, Sk, D) view with
enable_gqa=True (no copy, no expansion); each call reads a different copy of the cache so that
the L2 cannot hold it (>= 512 MB cycled), as flashattn's bench does.
"""
import argparse
import csv
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

HQ, HKV, D = 32, 8, 128


GRAPH_CALLS = 20


def bench_sdpa(backend, B, Sk, sq=1, iters=30, D=D):
    kv_bytes = B * Sk * HKV * D * 2
    copies = max(1, (512 << 20) // (2 * kv_bytes) + 1)
    ks = [torch.randn(B, Sk, HKV, D, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
    vs = [torch.randn(B, Sk, HKV, D, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
    q = torch.randn(B, sq, HQ, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
    note = ""

    def call(i):
        k = ks[i % copies].transpose(1, 2)
        v = vs[i % copies].transpose(1, 2)
        with sdpa_kernel([backend]):
            return F.scaled_dot_product_attention(q, k, v, is_causal=False, enable_gqa=True)

    try:
        for i in range(3):
            call(i)
        torch.cuda.synchronize()
    except Exception as e:  # backend cannot run this problem
        return None, None, f"n/a ({type(e).__name__})", None
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    for i, (a, b) in enumerate(ev):
        a.record()
        call(i)
        b.record()
    torch.cuda.synchronize()
    ms = sorted(a.elapsed_time(b) for a, b in ev)[iters // 2]
    # The same calls replayed from a CUDA graph: kernel time without the launch overhead.
    graph_us = None
    try:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            call(0)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for i in range(GRAPH_CALLS):
                call(i)
        times = []
        for r in range(7):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            g.replay()
            b.record()
            torch.cuda.synchronize()
            if r:
                times.append(a.elapsed_time(b))
        graph_us = sorted(times)[len(times) // 2] * 1e3 / GRAPH_CALLS
        del g
    except Exception as e:
        note = f"graph n/a ({type(e).__name__})"
    del ks, vs
    torch.cuda.empty_cache()
    return ms * 1e3, 2 * kv_bytes / (ms * 1e-3) / 1e9, note, graph_us


def load_csv(path):
    with open(path) as f:
        lines = f.read().splitlines()
    body = [l for l in lines if l and not l.startswith("#")]
    return {(r["layout"], int(r["batch"]), int(r["seqlen_k"]), int(r["seqlen_q"])): r for r in csv.DictReader(body)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--variant", action="append", default=[], help="NAME=FILE, another decode_bench CSV")
    args = ap.parse_args()
    header, rows = [], []
    with open(args.ours) as f:
        lines = f.read().splitlines()
    for line in lines:
        if line.startswith("#"):
            header.append(line[1:].strip())
    body = [l for l in lines if l and not l.startswith("#")]
    for r in csv.DictReader(body):
        rows.append(r)
    ours = {(r["layout"], int(r["batch"]), int(r["seqlen_k"]), int(r["seqlen_q"])): r for r in rows}
    print(f"Device: {torch.cuda.get_device_name()}; torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}; "
          + "; ".join(header))
    print()
    print("Decode, one query token, GQA 32/8, hdim 128, bf16, causal. µs = median CUDA-event time per call "
          "(eager: host launch overhead included); graph µs = per call when 20 calls replay as one CUDA graph; "
          "GB/s = K+V bytes / time. 'vs cuDNN' = cuDNN µs / flashattn µs (> 1: flashattn faster), eager and graph.")
    print()
    print("| batch | seqlen_k | splits | flashattn µs | GB/s | graph µs | graph GB/s | paged16 µs | GB/s | paged256 µs | GB/s "
          "| cuDNN µs | GB/s | cuDNN graph µs | fa2 µs | GB/s | fa2 graph µs | vs cuDNN | vs cuDNN (graph) | vs fa2 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    shapes = sorted({(b, s) for (l, b, s, q) in ours if q == 1 and l == "contiguous"})
    fmt = lambda x, n="": f"{x:.1f}" if x is not None else n
    fmtg = lambda x, n="": f"{x:.0f}" if x is not None else n
    ratio = lambda a, b: f"{a / b:.2f}" if a and b else "n/a"
    variants = [("ours", ours)] + [(v.split("=", 1)[0], load_csv(v.split("=", 1)[1])) for v in args.variant]
    cudnn = {}
    for B, Sk in shapes:
        c = ours[("contiguous", B, Sk, 1)]
        p16 = ours.get(("paged16", B, Sk, 1))
        p256 = ours.get(("paged256", B, Sk, 1))
        cu_us, cu_gb, cu_note, cu_g = bench_sdpa(SDPBackend.CUDNN_ATTENTION, B, Sk)
        cudnn[(B, Sk)] = (cu_us, cu_g)
        fa_us, fa_gb, fa_note, fa_g = bench_sdpa(SDPBackend.FLASH_ATTENTION, B, Sk)
        us, g_us = float(c["us"]), float(c["graph_us"]) or None
        print(f"| {B} | {Sk} | {c['splits']} | {us:.1f} | {c['GBps']} | {c['graph_us']} | {c['graph_GBps']} | "
              f"{p16['us'] if p16 else ''} | {p16['GBps'] if p16 else ''} | {p256['us'] if p256 else ''} | "
              f"{p256['GBps'] if p256 else ''} | {fmt(cu_us, cu_note)} | {fmtg(cu_gb)} | {fmt(cu_g, cu_note)} | "
              f"{fmt(fa_us, fa_note)} | {fmtg(fa_gb)} | {fmt(fa_g, fa_note)} | {ratio(cu_us, us)} | {ratio(cu_g, g_us)} | "
              f"{ratio(fa_us, us)} |")
        sys.stdout.flush()
    if len(variants) > 1:
        print()
        print("Same run, every decode_bench variant beside cuDNN: graph µs (contiguous / paged16 / paged256), "
              "eager µs (contiguous), and cuDNN graph µs / variant graph µs (> 1: flashattn faster).")
        print()
        print("| batch | seqlen_k | cuDNN graph µs | cuDNN µs | " +
              " | ".join(f"{n} graph µs (c/p16/p256) | {n} µs | {n} vs cuDNN (graph)" for n, _ in variants) + " |")
        print("|---|---|---|---|" + "---|---|---|" * len(variants))
        for B, Sk in shapes:
            cu_us, cu_g = cudnn[(B, Sk)]
            cells = []
            for n, v in variants:
                c = v.get(("contiguous", B, Sk, 1))
                p16 = v.get(("paged16", B, Sk, 1))
                p256 = v.get(("paged256", B, Sk, 1))
                if c is None:
                    cells.append(" | | ")
                    continue
                g = float(c["graph_us"]) or None
                cells.append(f"{c['graph_us']} / {p16['graph_us'] if p16 else ''} / {p256['graph_us'] if p256 else ''} | "
                             f"{c['us']} | {ratio(cu_g, g)}")
            print(f"| {B} | {Sk} | {fmt(cu_g)} | {fmt(cu_us)} | " + " | ".join(cells) + " |")
    multi = [r for k, r in ours.items() if k[3] != 1]
    if multi:
        print()
        print("Multi-token decode (flashattn only, contiguous, causal among the new tokens):")
        print()
        print("| batch | seqlen_k | seqlen_q | splits | µs | GB/s | graph µs | graph GB/s |")
        print("|---|---|---|---|---|---|---|---|")
        for r in multi:
            print(f"| {r['batch']} | {r['seqlen_k']} | {r['seqlen_q']} | {r['splits']} | {r['us']} | {r['GBps']} | "
                  f"{r['graph_us']} | {r['graph_GBps']} |")
    d256 = sorted((k[1], k[2]) for k in ours if k[0] == "contiguous_d256")
    if d256:
        print()
        print("Head dim 256 (GQA 32/8, bf16, one token, contiguous), same run:")
        print()
        print("| batch | seqlen_k | splits | flashattn µs | graph µs | graph GB/s | cuDNN µs | cuDNN graph µs | fa2 µs "
              "| fa2 graph µs | vs cuDNN (graph) | vs fa2 (graph) |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for B, Sk in d256:
            r = ours[("contiguous_d256", B, Sk, 1)]
            cu_us, _, cu_note, cu_g = bench_sdpa(SDPBackend.CUDNN_ATTENTION, B, Sk, D=256)
            fa_us, _, fa_note, fa_g = bench_sdpa(SDPBackend.FLASH_ATTENTION, B, Sk, D=256)
            g = float(r["graph_us"]) or None
            print(f"| {B} | {Sk} | {r['splits']} | {r['us']} | {r['graph_us']} | {r['graph_GBps']} | "
                  f"{fmt(cu_us, cu_note)} | {fmt(cu_g, cu_note)} | {fmt(fa_us, fa_note)} | {fmt(fa_g, fa_note)} | "
                  f"{ratio(cu_g, g)} | {ratio(fa_g, g)} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
