"""The summary of one `scripts/gpu_check.sh` run, and the run's first step (the device).

    python scripts/gpu_check_summary.py DIR                           # DIR/summary.json, DIR/summary.txt, stdout
    python scripts/gpu_check_summary.py --device FILE [--require-gpu]   # what gpu_check.sh's `device` step runs

DIR is a gpu_check.sh output folder: `run.json` (mode, budget), `steps.tsv` (one line per step: name, status, exit
code, seconds, limit, artifact, log, command; written by the shell script), `device.json`, each step's JSON (or,
for pytest_gpu, its JUnit XML) and `logs/`. A step is ok when its command exited 0 within its limit and its
artifact exists and parses; in a GPU run (not --dry) also when its JSON says it ran on the GPU, and pytest_gpu only
when at least one test ran and none failed. Exit status 0 when every step is ok, else 1.

Results: one line per measurement: what, implementation, size, median time, throughput and, where the JSON has
analytic GFLOP/s (bench_generator.py), the fraction of the GPU's FP32 and TF32 peak; bench_ops' FIR and epilogue
rows get the achieved bandwidth of their forward pass, (input + output) x 4 bytes / median time, against the HBM
peak. Peaks: `bench_common.GPU_PEAKS`, by `jax.devices()[0].device_kind` (device.json).
"""

import argparse
import csv
import json
import math
import os
import sys
import xml.etree.ElementTree as ElementTree

from bench_common import gpu_peaks, machine_info, read_report

FIR_OPS = ("upfirdn2d_up2", "upfirdn2d_down2", "epilogue_up", "epilogue_plain")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folder", nargs="?", help="a scripts/gpu_check.sh output folder")
    p.add_argument("--device", metavar="FILE", help="write the machine and device description to FILE and stop")
    p.add_argument("--require-gpu", action="store_true", help="with --device: exit 1 unless JAX's backend is gpu")
    args = p.parse_args(argv)
    if (args.folder is None) == (args.device is None):
        p.error("give either a folder or --device FILE")
    return args


def describe_device(path: str, require_gpu: bool) -> int:
    try:
        info = machine_info()
    except Exception as e:  # noqa: BLE001 - whatever stops JAX from starting, say it in one line
        print(f"JAX could not start a backend (JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '')!r}): {e!r}; a GPU "
              "needs jax with CUDA (pip install 'jax[cuda12]')", file=sys.stderr)
        return 1
    info["peaks"] = gpu_peaks(info["device_kind"]) if info["backend"] == "gpu" else None
    with open(path, "w") as f:
        json.dump(info, f, indent=1)
    print(json.dumps(info, indent=1))
    if require_gpu and info["backend"] != "gpu":
        print(f"JAX's backend is {info['backend']} ({info['device_kind']}), not a GPU", file=sys.stderr)
        return 1
    return 0


# ----------------------------------------------------------------------------------------------------------------
# One row per measurement


def row(step, what, implementation, size, median_s=None, throughput=None, unit="", note="", **extra) -> dict:
    return {"step": step, "what": what, "implementation": implementation, "size": size, "median_s": median_s,
            "throughput": throughput, "throughput_unit": unit, "note": note, **extra}


def with_peaks(r: dict, peaks: dict | None, gflop_per_s=None, gb_per_s=None) -> dict:
    """Add analytic GFLOP/s (fractions of FP32 / TF32 peak) or achieved GB/s (fraction of HBM peak) to a row."""
    # Fractions to 6 places: a tiny run's (--dry) are of order 1e-5 and must still show which peak was used.
    if gflop_per_s is not None:
        r["analytic_gflop_per_s"] = gflop_per_s
        if peaks:
            r["fraction_of_fp32_peak"] = round(gflop_per_s / (1e3 * peaks["fp32_tflop_per_s"]), 6)
            r["fraction_of_tf32_peak"] = round(gflop_per_s / (1e3 * peaks["tf32_tflop_per_s"]), 6)
    if gb_per_s is not None:
        r["achieved_gb_per_s"] = round(gb_per_s, 4)
        if peaks:
            r["fraction_of_hbm_peak"] = round(gb_per_s / (1e3 * peaks["hbm_tb_per_s"]), 6)
    return r


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def shape_text(shape) -> str:
    return "x".join(str(d) for d in shape)


def ops_rows(step: str, report: dict, peaks) -> list[dict]:
    rows = []
    for r in report["results"]:
        size = shape_text(r["shape"][0])
        note = r.get("note", "")
        median = r["forward_median_ms"] / 1e3
        gb_per_s = None
        if r["op"] in FIR_OPS and "output_shape" in r:
            elements = sum(math.prod(s) for s in r["shape"]) + sum(math.prod(s) for s in r["output_shape"])
            gb_per_s = 4 * elements / median / 1e9
        rows.append(with_peaks(row(step, f"op {r['op']} forward", r["implementation"], size, median,
                                   round(gb_per_s, 2) if gb_per_s else None, "GB/s" if gb_per_s else "", note),
                               peaks, gb_per_s=gb_per_s))
        if "forward_backward_median_ms" in r:
            rows.append(row(step, f"op {r['op']} forward+backward", r["implementation"], size,
                            r["forward_backward_median_ms"] / 1e3, note=note))
    return rows


def generator_rows(step: str, report: dict, peaks) -> list[dict]:
    cfg = report["config"]
    channels = cfg["channels"]
    rows = []
    for r in report["results"]:
        what = "generator " + ("forward" if r["mode"] == "forward" else "forward+backward")
        size = f"{cfg['resolution']} px, {max(channels)}-{min(channels)} ch, batch {r['batch']}"
        rows.append(with_peaks(row(step, what, cfg["implementation"], size, r["median_s"], r["images_per_s"],
                                   "images/s", f"compile {r['compile_s']} s"),
                               peaks, gflop_per_s=r["analytic_gflop_per_s"]))
    return rows


def drag_rows(step: str, report: dict, peaks) -> list[dict]:
    settings = report["settings"]
    implementation = settings.get("implementation", "default table")
    rows = []
    for res in report["results"]:
        for r in res["jaxgan"]:
            if "median_call_s" not in r:  # --memory-only
                continue
            note = f"first call {r['first_call_s']} s" + ("" if r["all_sessions_updated"] else
                                                         "; a session stopped while timed")
            n = r["sessions"]
            rows.append(row(step, "drag step", implementation, f"{res['resolution']} px, {plural(n, 'session')}",
                            r["median_call_s"] / r["steps_per_call"], r["session_steps_per_s"], "session-steps/s",
                            note))
    return rows


def editgan_rows(step: str, report: dict, peaks) -> list[dict]:
    rows = []
    for r in report["results"]:
        size = f"{r['resolution']} px, B={r['batch']}"
        if r["status"] == "ok":
            note = f"compile {r['compile_s']} s" + ("" if r["all_edits_advanced"] and r["losses_finite"] else
                                                   "; an edit did not advance or a loss was not finite")
            rows.append(row(step, "editgan step", "default table", size, r["s_per_step"], r["image_steps_per_s"],
                            "image-steps/s", note))
        else:
            rows.append(row(step, "editgan step", "default table", size, note=f"{r['status']}: {r['reason']}"))
    return rows


def serve_rows(step: str, report: dict, peaks) -> list[dict]:
    rows = []
    for config in report["results"]:
        for r in config["summary"]:
            note = f"p50 step latency; raw step {r.get('raw_session_steps_per_s', '-')} session-steps/s"
            if not r["all_sessions_full_budget"]:
                note += "; a session ended early"
            rows.append(row(step, "serve: concurrent drag clients", "default table",
                            f"{config['config']} ({config['resolution']} px), {plural(r['clients'], 'client')}",
                            r["p50_step_ms"] / 1e3 if r["p50_step_ms"] is not None else None,
                            r["session_steps_per_s"], "session-steps/s", note))
    return rows


ROWS_OF = {"ops_": ops_rows, "generator_": generator_rows, "drag_": drag_rows, "editgan_": editgan_rows,
           "serve_": serve_rows}


def pytest_result(path: str) -> dict:
    """Counts and failed test ids of a JUnit XML file (pytest --junitxml)."""
    root = ElementTree.parse(path).getroot()
    cases = root.iter("testcase")
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failed = []
    for case in cases:
        outcome = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        if outcome in ("failure", "error"):
            counts["failed"] += 1
            failed.append(f"{case.get('classname')}::{case.get('name')}")
        else:
            counts[outcome] += 1
    return {**counts, "failed_tests": failed}


# ----------------------------------------------------------------------------------------------------------------
# Steps


def last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][:300] if lines else "empty log"


def read_steps(folder: str) -> list[dict]:
    with open(os.path.join(folder, "steps.tsv"), newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def judge(step: dict, folder: str, gpu_run: bool, peaks) -> tuple[dict, list[dict]]:
    """(the step's entry in summary.json, its result rows)."""
    name, status = step["name"], step["status"]
    entry = {"name": name, "status": "ok", "exit_code": int(step["rc"]) if step["rc"] else None,
             "seconds": float(step["seconds"]), "limit_s": int(step["limit_s"]), "artifact": step["artifact"],
             "log": step["log"], "command": step["command"], "reason": ""}
    artifact = os.path.join(folder, step["artifact"])
    log = os.path.join(folder, step["log"])
    rows = []
    if status == "skipped":
        entry.update(status="skipped", reason="the budget was spent before it started")
        return entry, rows
    if status == "timeout":
        entry.update(status="timeout", reason=f"killed at its {entry['limit_s']} s limit; {last_line(log)}")
    elif status == "failed":
        entry.update(status="failed", reason=last_line(log))
    if name == "pytest_gpu":
        if not os.path.exists(artifact):
            entry.update(status=entry["status"] if entry["status"] != "ok" else "failed",
                         reason=entry["reason"] or f"no {step['artifact']}")
            return entry, rows
        result = pytest_result(artifact)
        entry["tests"] = result
        counts = f"{result['passed']} passed, {result['failed']} failed, {result['skipped']} skipped"
        if result["failed"]:
            entry.update(status="failed", reason=f"{counts}: {', '.join(result['failed_tests'])}")
        elif gpu_run and result["passed"] == 0:
            entry.update(status="failed", reason=f"{counts}: no kernel test ran on the GPU")
        elif entry["status"] == "ok" and not gpu_run:
            entry["reason"] = f"{counts} (no GPU: the gpu-marked tests skip)"
        rows.append(row(name, "Pallas kernels vs XLA (pytest -m gpu)", "pallas",
                        f"{sum(result[k] for k in ('passed', 'failed', 'skipped'))} tests", note=counts))
        return entry, rows
    if entry["status"] != "ok":
        return entry, rows
    try:
        report = read_report(artifact)
    except (OSError, ValueError) as e:
        entry.update(status="failed", reason=f"exit 0 but {step['artifact']} unreadable: {e}")
        return entry, rows
    if name == "device":
        return entry, rows
    backend = report.get("machine", {}).get("backend")
    if gpu_run and backend != "gpu":
        entry.update(status="failed", reason=f"ran on {backend}, not the GPU")
    kind = next(k for k in ROWS_OF if name.startswith(k))
    try:
        rows = ROWS_OF[kind](name, report, peaks)
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as e:
        entry.update(status="failed", reason=f"{step['artifact']} lacks what the summary reads: {e!r}")
    return entry, rows


# ----------------------------------------------------------------------------------------------------------------
# Text


def seconds_text(s) -> str:
    if s is None:
        return "-"
    return f"{1e3 * s:.3f} ms" if s < 1 else f"{s:.3f} s"


def percent(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def table(header: list[str], lines: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines)]
    fmt = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(cells) for cells in lines)]


def summary_text(summary: dict) -> str:
    device, peaks = summary["device"], summary["peaks"]
    out = [f"gpu_check {summary['mode']} run: {summary['folder']}",
           f"device: {device.get('device_kind', '?')} (backend {device.get('backend', '?')}, jax "
           f"{device.get('jax', '?')}, {device.get('device_count', '?')} device(s))",
           "peaks: " + (f"{peaks['name']}: {peaks['fp32_tflop_per_s']} TFLOP/s FP32, {peaks['tf32_tflop_per_s']} "
                        f"TFLOP/s TF32, {peaks['hbm_tb_per_s']} TB/s HBM" if peaks else
                        "none (not a GPU in bench_common.GPU_PEAKS): no fractions of peak"),
           f"steps: {summary['ok_steps']} of {len(summary['steps'])} ok, {summary['seconds']:.0f} s", ""]
    out += table(["step", "status", "seconds", "limit", "note"],
                 [[s["name"], s["status"], f"{s['seconds']:.1f}", s["limit_s"], s["reason"]]
                  for s in summary["steps"]])
    out.append("")
    lines = []
    for r in summary["rows"]:
        throughput = "-" if r["throughput"] is None else f"{r['throughput']:g} {r['throughput_unit']}"
        gflops = r.get("analytic_gflop_per_s")
        lines.append([r["step"], r["what"], r["implementation"], r["size"], seconds_text(r["median_s"]), throughput,
                      "-" if gflops is None else f"{gflops:g}", percent(r.get("fraction_of_fp32_peak")),
                      percent(r.get("fraction_of_tf32_peak")), percent(r.get("fraction_of_hbm_peak")), r["note"]])
    out += table(["step", "what", "impl", "size", "median", "throughput", "GFLOP/s", "FP32 peak", "TF32 peak",
                  "HBM peak", "note"], lines)
    return "\n".join(out) + "\n"


def summarise(folder: str) -> int:
    folder = os.path.abspath(folder)
    run = read_report(os.path.join(folder, "run.json"))
    try:
        device = read_report(os.path.join(folder, "device.json"))
    except (OSError, ValueError):
        device = {}
    gpu_run = run["mode"] == "gpu"
    peaks = device.get("peaks")
    steps, rows = [], []
    for step in read_steps(folder):
        entry, step_rows = judge(step, folder, gpu_run, peaks)
        steps.append(entry)
        rows += step_rows
    summary = {"mode": run["mode"], "budget_s": run["budget_s"], "started_utc": run["started_utc"],
               "folder": folder, "device": device, "peaks": peaks,
               "seconds": round(sum(s["seconds"] for s in steps), 1),
               "ok_steps": sum(s["status"] == "ok" for s in steps), "steps": steps, "rows": rows}
    text = summary_text(summary)
    with open(os.path.join(folder, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(folder, "summary.txt"), "w") as f:
        f.write(text)
    print(text, end="")
    return 0 if summary["ok_steps"] == len(steps) else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device:
        return describe_device(args.device, args.require_gpu)
    return summarise(args.folder)


if __name__ == "__main__":
    sys.exit(main())
