"""bench/compare_torch.py stays runnable: a tiny CPU run writes well-formed JSON."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch", reason="torch is not installed: the benchmark needs it")
import flashattn  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_compare_torch_cpu_smoke(tmp_path):
    out = tmp_path / "cmp.json"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(flashattn.__file__)))
    r = subprocess.run([sys.executable, os.path.join(REPO, "bench", "compare_torch.py"), "--device", "cpu",
                        "--hdims", "64", "--seqlens", "64", "--json", str(out)],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["meta"]["flashattn_backend"] == "cpu" and res["meta"]["torch"]
    assert {row["seqlen"] for row in res["training"]} == {64}
    assert all(row["ours"]["fwd_tflops"] > 0 and row["ours"]["bwd_tflops"] > 0 for row in res["training"])
    assert res["decode"] and res["decode"][0]["ours"]["us"] > 0
    assert res["overhead"]["wrapper_without_library_us"] > 0
