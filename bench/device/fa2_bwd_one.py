# One backward shape of torch SDPA FLASH_ATTENTION (FA2), for profilers: fa2_bwd_one.py D causal S
import sys, torch
from torch.nn.attention import sdpa_kernel, SDPBackend
import torch.nn.functional as F
D, causal, S = (int(a) for a in sys.argv[1:4])
B, H = 16384 // S, 2048 // D
q, k, v = (torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
g = torch.randn(B, H, S, D, device="cuda", dtype=torch.bfloat16)
with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
    for _ in range(4):
        torch.autograd.grad(F.scaled_dot_product_attention(q, k, v, is_causal=bool(causal)), (q, k, v), g)
torch.cuda.synchronize()
