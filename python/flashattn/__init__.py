"""flashattn: exact FlashAttention for CPU and NVIDIA GPUs.

NumPy (CPU, no torch needed):   ``flashattn.numpy.forward / backward / varlen_forward / varlen_backward``.
PyTorch (CPU and CUDA tensors): ``flash_attn_func``, ``flash_attn_varlen_func``, the packed forms and
``sdpa`` — imported on first use, so ``import flashattn`` does not import torch.

Errors: a bad argument raises ``ValueError`` whose message starts with the argument's name (also in
``err.argument``); what this build or engine cannot do raises ``NotImplementedError``; other
failures raise ``RuntimeError``.
"""

from . import _C

__version__ = _C.version()

# Names served by submodules that import torch, loaded on first access.
_LAZY_MODULES = ("interface", "kvcache")
_TORCH_NAMES = (
    "flash_attn_func",
    "flash_attn_varlen_func",
    "flash_attn_qkvpacked_func",
    "flash_attn_kvpacked_func",
    "flash_attn_varlen_qkvpacked_func",
    "flash_attn_varlen_kvpacked_func",
    "sdpa",
    "use_torch_allocator",
)


def backend_name(tensor):
    """Engine a call on ``tensor`` would run on ("cpu", "sm80", ...), honouring FLASHATTN_BACKEND."""
    return _C.backend_name(tensor)


def __getattr__(name):
    import importlib

    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for mod_name in _LAZY_MODULES:
        try:
            mod = importlib.import_module(f"{__name__}.{mod_name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{mod_name}":
                continue  # optional submodule not present in this build
            if e.name == "torch":
                if name in _TORCH_NAMES:
                    raise ImportError(f"flashattn.{name} needs PyTorch (pip install torch)") from e
                continue
            raise
        if hasattr(mod, name):
            value = getattr(mod, name)
            globals()[name] = value  # later look-ups skip __getattr__
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_TORCH_NAMES))
