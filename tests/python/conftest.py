"""Makes `import flashattn` work from a build tree when the package is not installed.

Order: an installed / PYTHONPATH flashattn; else $FLASHATTN_PYTHON_DIR; else the newest
<repo>/build*/python that holds a built extension (cmake -DFLASHATTN_PYTHON=ON).
"""
import glob
import importlib.util
import os
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _find_build_tree():
    env = os.environ.get("FLASHATTN_PYTHON_DIR")
    if env:
        return env
    found = glob.glob(os.path.join(_REPO, "build*", "python", "flashattn", "_C*.so"))
    found += glob.glob(os.path.join(_REPO, "build*", "python", "flashattn", "_C*.pyd"))
    if not found:
        return None
    newest = max(found, key=os.path.getmtime)
    return os.path.dirname(os.path.dirname(newest))


if importlib.util.find_spec("flashattn") is None or os.environ.get("FLASHATTN_PYTHON_DIR"):
    _dir = _find_build_tree()
    if _dir:
        sys.path.insert(0, _dir)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # reference.py
