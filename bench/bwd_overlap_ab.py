# Backward time with the dQ conversion overlapped with the main kernel (the default on sm_90) or in
# stream order (FLASHATTN_BWD_OVERLAP=0), three interleaved rounds, CUDA events around
# torch.autograd.grad on a retained graph (the backward alone), bf16, 16k tokens, hidden 2048.
# Run: PYTHONPATH=<build>/python python3 bench/bwd_overlap_ab.py 128:0:1024 128:1:4096 (hdim:causal:seqlen)
import os, sys, statistics, torch, flashattn

def times(fn, reps=12):
    for _ in range(3): fn()
    evs = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
    for a, b in evs:
        a.record(); fn(); b.record()
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) * 1e3 for a, b in evs)

cells = [tuple(int(x) for x in c.split(":")) for c in sys.argv[1:]]
print(f"# {torch.cuda.get_device_name(0)}: backward us, overlap on / off (median of 12, per round)")
for D, causal, S in cells:
    B, H = 16384 // S, 2048 // D
    q, k, v = (torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    g = torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16)
    o = flashattn.flash_attn_func(q, k, v, causal=bool(causal))
    fn = lambda: torch.autograd.grad(o, (q, k, v), g, retain_graph=True)
    on, off = [], []
    for _ in range(3):
        os.environ.pop("FLASHATTN_BWD_OVERLAP", None); on.append(times(fn))
        os.environ["FLASHATTN_BWD_OVERLAP"] = "0"; off.append(times(fn))
    os.environ.pop("FLASHATTN_BWD_OVERLAP", None)
    fl = 2.5 * 4.0 * B * H * S * S * D / (2 if causal else 1)
    print(f"d{D} causal{causal} S{S}: on {' '.join(f'{t:.1f}' for t in on)} | off {' '.join(f'{t:.1f}' for t in off)}"
          f" | best {min(off)/min(on):.4f}x  ({fl/min(on)/1e6:.1f} vs {fl/min(off)/1e6:.1f} TFLOP/s)", flush=True)
