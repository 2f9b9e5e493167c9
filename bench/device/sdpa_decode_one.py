#!/usr/bin/env python3
"""A few decode calls of torch SDPA on one shape, for profilers (Nsight Compute):
    python3 sdpa_decode_one.py B Sk [cudnn|flash] [head_dim]
GQA 32/8, bf16, one query token, the (B, Sk, Hkv, D) cache passed as its (B, Hkv, Sk, D) view,
as bench/compare_decode.py times it; each call reads another copy of the cache (no L2 reuse)."""
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

B, Sk = int(sys.argv[1]), int(sys.argv[2])
backend = {"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION}[sys.argv[3] if len(sys.argv) > 3 else "cudnn"]
D = int(sys.argv[4]) if len(sys.argv) > 4 else 128
HQ, HKV, copies = 32, 8, 6
ks = [torch.randn(B, Sk, HKV, D, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
vs = [torch.randn(B, Sk, HKV, D, device="cuda", dtype=torch.bfloat16) for _ in range(copies)]
q = torch.randn(B, 1, HQ, D, device="cuda", dtype=torch.bfloat16).transpose(1, 2)
with sdpa_kernel([backend]):
    for i in range(12):
        F.scaled_dot_product_attention(q, ks[i % copies].transpose(1, 2), vs[i % copies].transpose(1, 2), enable_gqa=True)
torch.cuda.synchronize()
