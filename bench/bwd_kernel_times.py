# Per-kernel times of the backward (ours and torch FLASH_ATTENTION = FA2) from torch.profiler's
# CUPTI trace: where the backward's time goes, bf16, 16k tokens, hidden 2048.
# Run: PYTHONPATH=<build>/python python3 bench/bwd_kernel_times.py 128:0:1024 64:1:4096 (hdim:causal:seqlen)
import sys, collections, torch, flashattn
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
from torch.profiler import profile, ProfilerActivity

def parts(fn, reps=10):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(reps): fn()
        torch.cuda.synchronize()
    agg = collections.defaultdict(float)
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            agg[e.name[:70]] += e.device_time / reps
    return agg

cells = [(int(a), int(b), int(c)) for a, b, c in (x.split(":") for x in sys.argv[1:])] or [(128, 0, 1024), (128, 0, 4096)]
for D, causal, S in cells:
    B, H = 16384 // S, 2048 // D
    q, k, v = (torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    g = torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16)
    o = flashattn.flash_attn_func(q, k, v, causal=bool(causal))
    ours = parts(lambda: torch.autograd.grad(o, (q, k, v), g, retain_graph=True))
    qt, kt, vt = (x.transpose(1, 2) for x in (q, k, v))
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        o2 = F.scaled_dot_product_attention(qt, kt, vt, is_causal=bool(causal))
    fa2 = parts(lambda: torch.autograd.grad(o2, (q, k, v), g.transpose(1, 2), retain_graph=True))
    fl = 2.5 * 4.0 * B * H * S * S * D / (2 if causal else 1)
    for name, agg in (("ours", ours), ("fa2", fa2)):
        tot = sum(agg.values())
        print(f"D{D} causal{causal} S{S} {name}: total {tot:.1f} us = {fl / tot / 1e6:.1f} TFLOP/s")
        for kname, t in sorted(agg.items(), key=lambda kv: -kv[1]):
            print(f"    {t:9.1f} us  {kname}")
