"""`python -m fusedattn` (the main job) and the benchmark plumbing, on tiny CPU shapes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fusedattn import benchmarking as bm
from fusedattn.ops.attention_pool import benchmarks as apb
from fusedattn.__main__ import main

ROOT = Path(__file__).resolve().parents[1]


def test_env_and_check(capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "== environment" in out and "torch matches" in out and "attention_pool backends for cpu" in out
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "attention_pool  cpu        float32   ok" in out and "FAILED" not in out


def test_bench_writes_json_plot_and_renders(tmp_path, capsys):
    path, png = tmp_path / "r.json", tmp_path / "r.png"
    assert main(["bench", "--shapes", "2,16,5x5,3;1,8,3x4,2", "--impls", "cpu,eager",
                 "--modes", "forward,forward+backward", "--min-time", "0.01",
                 "--json", str(path), "--plot", str(png)]) == 0
    assert "GPU numbers need a GPU" in capsys.readouterr().out
    payload = json.loads(path.read_text())
    assert payload["command"].startswith("python -m fusedattn bench")
    rows = payload["results"]
    assert len(rows) == 2 * 2 * 2
    for r in rows:
        assert r["p50_us"] > 0 and r["floor_bytes"] > 0 and r["ratio_to_floor"] > 0
        assert r["speedup_vs_eager"] is not None
    assert png.read_bytes()[:4] == b"\x89PNG"
    table = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "render.py"), str(path)],
                           capture_output=True, text=True, check=True).stdout
    assert table.count("\n| attention_pool | 2,16,5x5,3 |") == 4


def test_floor_bytes_match_spec():
    """docs/attention_pool.md: bf16, B=256 C=1024 N=20x20 K=8: bytes(F) = 210 MB; forward floor ~71 us and
    forward+backward ~213 us at 3.02 TB/s."""
    shape = apb.Shape.parse("256,1024,20x20,8")
    assert shape == apb.Shape(256, 1024, 20, 20, 8)
    fwd = apb.floor_bytes(shape, torch.bfloat16, "forward")
    both = apb.floor_bytes(shape, torch.bfloat16, "forward+backward")
    assert 209e6 < 256 * 1024 * 400 * 2 < fwd < 216e6
    assert fwd / 3.02e12 * 1e6 == pytest.approx(71, abs=1.5)
    assert both / 3.02e12 * 1e6 == pytest.approx(213, abs=3)
    with pytest.raises(ValueError, match="B,C,HxW,K"):
        apb.Shape.parse("1,2,3")
