"""Peers for bench/sm80_fwd_tune.cu: torch SDPA's FLASH_ATTENTION and CUDNN_ATTENTION
forward on the same anchor shapes (bf16, 16k tokens, hidden 2048), median CUDA-event
time over rotated input sets. Arguments: head dims (default 64 128 192 256); env SEQLENS overrides 1024 2048 4096 8192. Prints the same CSV: impl,hdim,causal,seqlen,ms,tflops."""
import os
import sys

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
import torch.nn.functional as F


def median_ms(fn, reps=20):
    for i in range(3):
        fn(i)
    torch.cuda.synchronize()
    times = []
    for i in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn(i)
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    print("device:", torch.cuda.get_device_name(0), "torch", torch.__version__, file=sys.stderr)
    print("impl,hdim,causal,seqlen,ms,tflops")
    dims = [int(a) for a in sys.argv[1:]] or [64, 128, 192, 256]
    for d in dims:
        for causal in (0, 1):
            for s in [int(x) for x in os.environ.get("SEQLENS", "1024 2048 4096 8192").split()]:
                b, h = 16384 // s, 2048 // d
                sets = [[torch.randn(b, h, s, d, device="cuda", dtype=torch.bfloat16) for _ in range(3)] for _ in range(3)]
                flops = 4.0 * b * h * s * s * d / (2 if causal else 1)
                for name, be in (("fa2", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
                    try:
                        with sdpa_kernel(be):
                            ms = median_ms(lambda i: F.scaled_dot_product_attention(*sets[i % 3], is_causal=bool(causal)))
                        print(f"{name},{d},{causal},{s},{ms:.4f},{flops / (ms * 1e-3) / 1e12:.1f}", flush=True)
                    except Exception as e:  # a backend missing on this build
                        print(f"{name},{d},{causal},{s},nan,nan  # {e}", flush=True)
                del sets


if __name__ == "__main__":
    main()
