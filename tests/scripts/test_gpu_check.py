"""`bash scripts/gpu_check.sh --dry`: every step of the prepared GPU run, on the CPU at tiny sizes, so the script and
the benchmarks it drives cannot rot unnoticed before a GPU is available.

One dry run per test session (a module fixture); the tests read its folder. The JAX compilation cache of the run is
kept in pytest's cache folder (.pytest_cache) between sessions: a hit skips only XLA's compilation of an unchanged
program, every step still traces and runs all of it (about 80 s warm, 220 s cold, on the 2-core CI machine).
"""

import csv
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
SUMMARY = ROOT / "scripts" / "gpu_check_summary.py"
STEPS = ("device", "pytest_gpu", "ops_256", "ops_1024", "ops_64", "generator_256_xla", "generator_256_pallas",
         "drag_xla", "drag_pallas", "generator_1024_xla", "generator_1024_pallas", "editgan_512", "serve_256")
BENCHMARKS = [s for s in STEPS if s not in ("device", "pytest_gpu")]
CACHE_LIMIT_BYTES = 256 * 2 ** 20  # one run's entries take about 8 MB
TABLE_HEADER = ["step", "what", "impl", "size", "median", "throughput", "GFLOP/s", "FP32 peak", "TF32 peak",
                "HBM peak", "note"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, request):
    """(output folder, completed process) of one `gpu_check.sh --dry` run."""
    out = tmp_path_factory.mktemp("gpu_check")
    env = dict(os.environ)
    cache = getattr(request.config, "cache", None)  # absent under -p no:cacheprovider: the run uses a temporary one
    if cache is not None:
        folder = cache.mkdir("gpu_check_jax_cache")
        if sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) > CACHE_LIMIT_BYTES:
            shutil.rmtree(folder)  # entries of programs that changed since pile up; start again
            folder = cache.mkdir("gpu_check_jax_cache")
        env["JAX_COMPILATION_CACHE_DIR"] = str(folder)
    proc = subprocess.run(["bash", str(SCRIPT), "--dry", "--out", str(out), "--python", sys.executable], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=900)
    return out, proc


def test_dry_run_exits_zero(dry_run):
    out, proc = dry_run
    logs = {p.name: p.read_text()[-2000:] for p in sorted((out / "logs").glob("*.log"))}
    failed = {name: text for name, text in logs.items() if "Traceback" in text or "Error" in text}
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}\nfailed step logs: {failed}"


def test_every_step_wrote_its_result(dry_run):
    out, _ = dry_run
    with open(out / "steps.tsv", newline="") as f:
        steps = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert [s["name"] for s in steps] == list(STEPS)
    assert all(s["status"] == "done" and s["rc"] == "0" for s in steps), steps
    for name in BENCHMARKS:
        report = json.loads((out / f"{name}.json").read_text())
        assert report["machine"]["backend"] == "cpu" and report["results"], name
    assert json.loads((out / "device.json").read_text())["backend"] == "cpu"
    suite = ElementTree.parse(out / "pytest_gpu.xml").getroot()
    cases = list(suite.iter("testcase"))
    assert cases and all(case.find("skipped") is not None for case in cases)  # no GPU: collected, then skipped
    # the implementation flags reached the scripts
    assert json.loads((out / "generator_256_pallas.json").read_text())["config"]["implementation"] == "pallas"
    assert json.loads((out / "drag_pallas.json").read_text())["settings"]["implementation"] == "pallas"
    assert json.loads((out / "drag_xla.json").read_text())["settings"]["implementation"] == "xla"
    ops = json.loads((out / "ops_256.json").read_text())["results"]
    assert {r["implementation"] for r in ops} == {"xla", "pallas", "reference"}


def test_summary_lists_every_step_ok(dry_run):
    out, _ = dry_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mode"] == "dry"
    assert [s["name"] for s in summary["steps"]] == list(STEPS)
    assert [s["status"] for s in summary["steps"]] == ["ok"] * len(STEPS), summary["steps"]
    with_rows = {r["step"] for r in summary["rows"]}
    assert with_rows == set(STEPS) - {"device"}
    generator = [r for r in summary["rows"] if r["step"] == "generator_256_xla"]
    assert len(generator) == 4 and all(r["analytic_gflop_per_s"] is not None for r in generator)
    assert all(r["median_s"] > 0 and r["throughput"] > 0 for r in generator)


def test_summary_text_has_the_table(dry_run):
    out, proc = dry_run
    text = (out / "summary.txt").read_text()
    assert text in proc.stdout  # printed too
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["step", "what"])
    assert lines[header].split("  ")[0] == "step" and all(h in lines[header] for h in TABLE_HEADER)
    rows = lines[header + 2:]
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == len(summary["rows"])
    assert any(line.startswith("generator_1024_pallas") and " pallas " in line for line in rows)
    assert "13 of 13 ok" in text


def test_summary_fails_a_step_that_failed(dry_run, tmp_path):
    """The summary is not a rubber stamp: a step that exited non-zero, or wrote an unreadable JSON, is failed, and
    the exit status says so."""
    out, _ = dry_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "drag_pallas.json").write_text("{ not json")
    steps = (copy / "steps.tsv").read_text().splitlines()
    steps = [line.replace("\tdone\t0\t", "\tfailed\t1\t", 1) if line.startswith("ops_64\t") else line
             for line in steps]
    (copy / "steps.tsv").write_text("\n".join(steps) + "\n")
    (copy / "logs" / "ops_64.log").write_text("Traceback ...\nValueError: the kernel did not lower\n")
    proc = subprocess.run([sys.executable, str(SUMMARY), str(copy)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    status = {s["name"]: s for s in json.loads((copy / "summary.json").read_text())["steps"]}
    assert status["ops_64"]["status"] == "failed" and "did not lower" in status["ops_64"]["reason"]
    assert status["drag_pallas"]["status"] == "failed" and "unreadable" in status["drag_pallas"]["reason"]
    assert sum(s["status"] == "ok" for s in status.values()) == len(STEPS) - 2


def test_summary_of_a_gpu_run(dry_run, tmp_path):
    """The same folder as if a GPU run had written it: fractions of the H200's peaks (67 TFLOP/s FP32, 495 TFLOP/s
    TF32, 4.8 TB/s HBM, scripts/results/README.md), a kernel suite that only skipped is a failure there, and so is a
    step whose JSON says it ran on the CPU."""
    out, _ = dry_run
    copy = tmp_path / "gpu"
    shutil.copytree(out, copy)
    run = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**run, "mode": "gpu"}))
    for name in BENCHMARKS:
        if name != "serve_256":  # left as the CPU wrote it
            report = json.loads((copy / f"{name}.json").read_text())
            report["machine"]["backend"] = "gpu"
            (copy / f"{name}.json").write_text(json.dumps(report))
    # the device step looks the peaks up in bench_common.GPU_PEAKS by device_kind; the same lookup here
    peaks = subprocess.run([sys.executable, "-c", "import json, bench_common; "
                            "print(json.dumps(bench_common.gpu_peaks('NVIDIA H200')))"],
                           cwd=ROOT / "scripts", capture_output=True, text=True, timeout=60)
    device = json.loads((copy / "device.json").read_text())
    (copy / "device.json").write_text(json.dumps({**device, "backend": "gpu", "device_kind": "NVIDIA H200",
                                                  "peaks": json.loads(peaks.stdout)}))
    proc = subprocess.run([sys.executable, str(SUMMARY), str(copy)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((copy / "summary.json").read_text())
    status = {s["name"]: s for s in summary["steps"]}
    assert status["pytest_gpu"]["status"] == "failed" and "no kernel test ran" in status["pytest_gpu"]["reason"]
    assert status["serve_256"]["status"] == "failed" and "ran on cpu" in status["serve_256"]["reason"]
    assert {name for name, s in status.items() if s["status"] != "ok"} == {"pytest_gpu", "serve_256"}
    generator = [r for r in summary["rows"] if r["what"].startswith("generator")]
    for r in generator:
        assert abs(r["fraction_of_fp32_peak"] - r["analytic_gflop_per_s"] / 67e3) <= 1e-6  # rounded to 6 places
        assert abs(r["fraction_of_tf32_peak"] - r["analytic_gflop_per_s"] / 495e3) <= 1e-6
    fir = [r for r in summary["rows"] if r["what"] == "op upfirdn2d_up2 forward"]
    # Both figures are rounded (bandwidth to 4 places, the fraction to 6, from the unrounded bandwidth); the dry
    # run's bandwidths (about 0.3 GB/s) still tell 4.8 TB/s (H200) from 3.35 (H100) by 3e-5.
    assert fir and all(abs(r["fraction_of_hbm_peak"] - r["achieved_gb_per_s"] / 4.8e3) <= 1e-6 for r in fir)
    assert "H200: 67 TFLOP/s FP32, 495 TFLOP/s TF32, 4.8 TB/s HBM" in (copy / "summary.txt").read_text()
