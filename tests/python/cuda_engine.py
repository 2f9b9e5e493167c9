"""Whether the CUDA engine can run here: a GPU torch sees and a flashattn build with its CUDA
engine (a CPU-only build raises NotImplementedError for CUDA tensors). The torch tests skip their
CUDA cases without it."""
import torch

import flashattn


def cuda_engine_available():
    if not torch.cuda.is_available():
        return False
    try:
        q = torch.zeros(1, 1, 1, 64, device="cuda", dtype=torch.float16)
        flashattn.flash_attn_func(q, q, q)
        return True
    except NotImplementedError:
        return False
