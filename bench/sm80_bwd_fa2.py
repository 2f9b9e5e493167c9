# Backward timing of torch SDPA FLASH_ATTENTION (FlashAttention-2's kernels) on the anchor shapes of
# bench/sm80_bwd_tune.cu (bf16, 16k tokens, hidden 2048, head dims 64 / 128 / 256, causal and
# not, seqlen 1k-16k), for a same-run comparison: bwd time = (fwd + bwd) - fwd, median of CUDA-event
# timings; prints the same CSV. Run: python3 bench/sm80_bwd_fa2.py
import torch
from torch.nn.attention import sdpa_kernel, SDPBackend
import torch.nn.functional as F

def med(f, reps=7):
    for _ in range(2): f()
    ts = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True); b = torch.cuda.Event(enable_timing=True)
        a.record(); f(); b.record(); torch.cuda.synchronize(); ts.append(a.elapsed_time(b))
    ts.sort(); return ts[len(ts) // 2]

print("# device:", torch.cuda.get_device_name(0), "torch", torch.__version__)
for D in (64, 128, 256):
    for causal in (0, 1):
        for S in (1024, 2048, 4096, 8192, 16384):
            B, H = 16384 // S, 2048 // D
            q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
            g = torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16)
            with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
                fwd = med(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal)))
                fb = med(lambda: torch.autograd.grad(F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal)), (q, k, v), g))
            bwd = fb - fwd
            fl = 4.0 * B * H * S * S * D / (2 if causal else 1)
            print(f"torch_fa2,{D},{causal},{S},{B},{H},{bwd:.3f},{2.5*fl/bwd/1e9:.1f}", flush=True)
