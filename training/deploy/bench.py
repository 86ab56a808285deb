"""lightlip-bench: generator latency of the teacher and the student on every engine and precision available.

    lightlip-bench                                         # this machine, default models, about 3 minutes
    lightlip-bench --student student.pt --student-plan runs/quant/plan.json --batches 1,8 --iterations 50

One run times each model (teacher, student) on each engine present here (PyTorch, ONNX Runtime, TensorRT)
in each precision the engine supports (FP32, FP16, INT8, mixed), at batch 1 and a larger batch, on real
inputs (the bundled face photo and speech), and reports p50/p95 latency per call, per frame, and the
speedup over the teacher at FP32 on the same engine and batch in the same run. The measurements take turns
(one call of each row per round), so a change of machine load during the run hits every row alike. What
cannot run here is listed with the reason. Markdown and JSON go to --out with a description of the machine.
On a Jetson with
TensorRT, the same command gives the paper's Fig. 5 table (TensorRT rows).

Models: --teacher/--student checkpoints; without --teacher a teacher with random weights stands in (latency
does not depend on the weights), without --student the bundled lightlip_ros/assets/student.pt if present.
INT8 files use the plan's calibrated ranges (--*-plan from `lightlip-quant sensitivity`) or, without a
plan, ranges calibrated here on the bundled face and speech (max of |x|): right for timing, not for quality.
Mixed precision needs a plan (its FP16 layers come from the sensitivity analysis) and is skipped without one.
ONNX files and TensorRT engines are cached in --work-dir by model and plan, so reruns only time.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from lightlip_ros import ASSETS
from lightlip_ros.atomic_files import atomic_write_json, atomic_write_text
from lightlip_ros.engines import (ENGINE_NAMES, FP32, INT8, MIXED, ONNXRUNTIME, PRECISIONS, TENSORRT, TORCH,
                                  EngineError, EngineOptions)
from lightlip_ros.engines.onnxruntime_engine import OnnxRuntimeEngine
from lightlip_ros.engines.torch_engine import TorchEngine
from lightlip_ros.errors import run_command
from lightlip_ros.models import CheckpointError, load_generator, save_generator, wav2lip_teacher, weight_fingerprint
from training.quant.calibration import collect_activation_stats
from training.quant.export import export_precisions
from training.quant.layers import fold_batchnorm, quantizable_layers
from training.quant.plan import LayerPlan, QuantPlan
from training.quant.samples import SampleSet

ENGINES = tuple(reversed(ENGINE_NAMES))  # the reference first
MODELS = ("teacher", "student")
# Each model's inputs: the bundled face and speech (as many frames as the largest batch needs).
_CALIBRATION_FRAMES = 8


@dataclass
class Timing:
    model: str
    engine: str
    precision: str
    batch: int
    iterations: int
    p50_ms: float  # per call (one batch)
    p95_ms: float
    per_frame_ms: float  # p50 / batch
    frames_per_s: float
    speedup: Optional[float] = None  # teacher FP32 per-frame p50 / this per-frame p50, same engine and batch


@dataclass
class Skip:
    model: str
    engine: str
    precision: str
    reason: str


def machine_description() -> dict:
    """CPU, cores, GPU and library versions of this machine."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith(("model name", "Model")):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {"python": platform.python_version()}
    for module in ("torch", "onnxruntime", "onnx", "numpy", "tensorrt"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    gpu = None
    if versions["tensorrt"] or torch.cuda.is_available():
        from lightlip_ros.engines.tensorrt_engine import cuda_device
        try:
            gpu = cuda_device()
        except EngineError:
            gpu = None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": affinity, "gpu": gpu,
            "platform": platform.platform(), "versions": versions}


def time_rounds(cases, warmup: int, iterations: int, progress: bool = False) -> np.ndarray:
    """(iterations, len(cases)) seconds per call; cases are (engine, mel, face).

    The cases take turns, one timed call each per round, after `warmup` untimed calls each: a machine whose
    load changes during the run (other processes, thermal limits) then slows every case alike instead of the
    ones that happened to run at a bad moment. Each timed call follows an untimed call of the same case, so
    it runs with its own weights in the CPU caches, as on a robot that runs one model: right after the
    teacher (150 MB of weights), the student's first call measured 6.3 ms instead of 4 ms on ONNX Runtime
    and 24 ms instead of 6 ms in PyTorch.
    """
    for engine, mel, face in cases:
        for _ in range(warmup):
            engine.infer(mel, face)
    seconds = np.empty((iterations, len(cases)))
    for round_index in tqdm(range(iterations), desc="bench", unit="round", disable=not progress, leave=False):
        for case_index, (engine, mel, face) in enumerate(cases):
            engine.infer(mel, face)  # its own weights back in cache
            start = time.perf_counter()
            engine.infer(mel, face)
            seconds[round_index, case_index] = time.perf_counter() - start
    return seconds


def summarise(model, engine, precision, batch, seconds) -> Timing:
    p50, p95 = (float(np.percentile(seconds, q)) * 1000.0 for q in (50, 95))
    return Timing(model, engine, precision, batch, len(seconds), p50, p95, p50 / batch, 1000.0 * batch / p50)


def add_speedups(timings) -> None:
    """Speedup of every row over the teacher at FP32 on the same engine and batch, from the measured p50s."""
    baseline = {(t.engine, t.batch): t.per_frame_ms for t in timings if t.model == "teacher" and t.precision == FP32}
    for timing in timings:
        reference = baseline.get((timing.engine, timing.batch))
        timing.speedup = None if reference is None else reference / timing.per_frame_ms


def timing_plan(model, samples: SampleSet) -> QuantPlan:
    """An all-INT8 plan from ranges calibrated on `samples` (max |x|): for timing INT8, not for quality."""
    folded = fold_batchnorm(model)
    ranges = collect_activation_stats(folded, samples, batch_size=_CALIBRATION_FRAMES, progress=False).ranges("max")
    layers = [LayerPlan(name, type(module).__name__, INT8, ranges[name], math.nan, math.nan, 0)
              for name, module in quantizable_layers(folded).items()]
    return QuantPlan({"sha256": weight_fingerprint(folded)}, {"method": "max", "samples": samples.source}, {}, {},
                     layers)


def onnx_variants(label, model, plan: Optional[QuantPlan], samples, work_dir: Path, precisions):
    """({precision: ONNX path}, [Skip]) for one model, exported once into a cache folder per model and plan."""
    skips = []
    wanted = [p for p in precisions if p != MIXED or plan is not None]
    if MIXED in precisions and plan is None:
        skips.append(Skip(label, "onnxruntime/tensorrt", MIXED, f"no precision plan for the {label} (give "
                          f"--{label}-plan from `lightlip-quant sensitivity`)"))
    quantized = [p for p in wanted if p in (INT8, MIXED)]
    if quantized and plan is None:
        plan = timing_plan(model, samples)
    key = hashlib.sha256((weight_fingerprint(fold_batchnorm(model)) + json.dumps(
        plan.to_json()["layers"] if plan is not None else None, default=str)).encode()).hexdigest()[:16]
    folder = work_dir / f"{label}-{key}"
    files = {p: folder / f"{label}.{p}.onnx" for p in wanted}
    missing = [p for p in wanted if not files[p].is_file()]
    if missing:
        export_precisions(model, folder, plan, missing, stem=label)
    return files, skips


def tensorrt_problem() -> Optional[str]:
    """Why TensorRT cannot run here, or None."""
    try:
        import tensorrt  # noqa: F401  (only whether it imports)
    except ImportError:
        return "TensorRT is not installed (no `tensorrt` module; it needs an NVIDIA GPU and NVIDIA's packages)"
    from lightlip_ros.engines.tensorrt_engine import cuda_device
    try:
        cuda_device()
    except EngineError as error:
        return str(error)
    return None


def open_engines(label, checkpoint: Path, files: dict, engines, batches, work_dir: Path, threads: int):
    """[(engine name, precision, engine)] and [Skip] for one model."""
    opened, skips = [], []
    options = EngineOptions(threads=threads, cache_dir=work_dir / "cache")
    if TORCH in engines:
        opened.append((TORCH, FP32, TorchEngine(checkpoint, options)))
        for precision in (p for p in files if p != FP32):
            skips.append(Skip(label, TORCH, precision, "the PyTorch engine runs FP32 only (lower precisions "
                                                       "run through ONNX Runtime and TensorRT)"))
    if ONNXRUNTIME in engines:
        for precision, path in files.items():
            opened.append((ONNXRUNTIME, precision, OnnxRuntimeEngine(path, options)))
    if TENSORRT in engines:
        problem = tensorrt_problem()
        if problem is not None:
            skips.append(Skip(label, TENSORRT, "all", problem))
        else:
            from lightlip_ros.engines.tensorrt_engine import TensorRTEngine
            from training.deploy.engine_builder import BuildError, build_engine
            for precision, path in files.items():
                engine_path = path.with_suffix(".engine")
                try:
                    if not engine_path.is_file():
                        build_engine(path, engine_path, work_dir / "timing.cache", opt_batch=1, max_batch=max(batches))
                    opened.append((TENSORRT, precision, TensorRTEngine(engine_path)))
                except (BuildError, EngineError) as error:
                    skips.append(Skip(label, TENSORRT, precision, str(error)))
    return opened, skips


def run_bench(args) -> dict:
    torch.set_num_threads(args.threads)
    batches = sorted(set(args.batches))
    precisions = [p for p in PRECISIONS if p in args.precisions]
    samples = SampleSet.from_media(ASSETS / "face.jpg", ASSETS / "speech.wav", limit=max(max(batches),
                                                                                         _CALIBRATION_FRAMES))
    work_dir = args.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    cases, skips, models = [], [], {}
    for label in args.models:
        model, checkpoint, source = _model(label, args, work_dir)
        plan = QuantPlan.load(getattr(args, f"{label}_plan")) if getattr(args, f"{label}_plan") else None
        models[label] = {"source": source, "architecture": model.architecture,
                         "parameters": sum(p.numel() for p in model.parameters()),
                         "plan": str(getattr(args, f"{label}_plan")) if plan is not None else None,
                         "fp16_layers": plan.fp16_layers if plan is not None else None}
        onnx_engines = [e for e in args.engines if e != TORCH]
        files, skipped = onnx_variants(label, model, plan, samples, work_dir, precisions) if onnx_engines else ({}, [])
        skips += skipped
        opened, skipped = open_engines(label, checkpoint, files, args.engines, batches, work_dir, args.threads)
        skips += skipped
        cases += [(label, engine_name, precision, engine, batch) for engine_name, precision, engine in opened
                  for batch in batches]
    inputs = {batch: (np.ascontiguousarray(samples.mel[:batch].numpy()),
                      np.ascontiguousarray(samples.face[:batch].numpy())) for batch in batches}
    load_before = os.getloadavg()[0]
    seconds = time_rounds([(case[3], *inputs[case[4]]) for case in cases], args.warmup, args.iterations,
                          progress=not args.quiet)
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    timings = [summarise(label, engine_name, precision, batch, seconds[:, index])
               for index, (label, engine_name, precision, _, batch) in enumerate(cases)]
    add_speedups(timings)
    return {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {**machine_description(), "load_average_1min": load},
            "settings": {"batches": batches, "warmup": args.warmup, "iterations": args.iterations,
                         "threads": args.threads, "engines": list(args.engines), "precisions": precisions,
                         "inputs": samples.source},
            "models": models, "results": [asdict(t) for t in timings], "skipped": [asdict(s) for s in skips]}


def _model(label, args, work_dir: Path):
    """(model, checkpoint path the PyTorch engine loads, description)."""
    path = getattr(args, label)
    if path is None and label == "student" and (ASSETS / "student.pt").is_file():
        path = ASSETS / "student.pt"
    if path is not None:
        return load_generator(path), Path(path), str(path)
    if label == "student":
        raise CheckpointError("no student checkpoint: give --student (lightlip_ros/assets/student.pt is absent)")
    torch.manual_seed(0)  # the same stand-in every run, so its cached exports stay valid
    model = wav2lip_teacher().eval()
    checkpoint = work_dir / "teacher-random.pt"
    if not checkpoint.is_file():
        save_generator(model, checkpoint, note="random weights: a stand-in for timing only")
    return model, checkpoint, "Wav2Lip architecture with random weights (timing only)"


def markdown(report: dict) -> str:
    machine = report["machine"]
    gpu = machine["gpu"]["name"] if machine["gpu"] else "none"
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    settings = report["settings"]
    load = machine["load_average_1min"]
    lines = [f"Machine: {machine['cpu']}, {machine['usable_cores']} usable cores, GPU: {gpu}; {versions}.",
             f"Load average (1 min) {load['before']:.2f} before the timed calls, {load['after']:.2f} after: "
             f"other processes' share of the cores, which slows the bigger model more.",
             f"{settings['warmup']} warm-up + {settings['iterations']} timed calls per row (the rows take turns, "
             f"each round an untimed and a timed call of each, so every row runs with its own weights in cache), "
             f"{settings['threads']} thread(s); inputs: {settings['inputs']}.", "",
             "| model | engine | precision | batch | p50 (ms) | p95 (ms) | ms/frame | frames/s "
             "| speedup vs teacher FP32 |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for row in report["results"]:
        speedup = "–" if row["speedup"] is None else f"{row['speedup']:.1f}x"
        lines.append(f"| {row['model']} | {row['engine']} | {row['precision'].upper()} | {row['batch']} | "
                     f"{row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['per_frame_ms']:.2f} | "
                     f"{row['frames_per_s']:.1f} | {speedup} |")
    if report["skipped"]:
        lines += ["", "Not measured here:", ""]
        lines += [f"- {s['model']} {s['engine']} {s['precision'].upper()}: {s['reason']}" for s in report["skipped"]]
    return "\n".join(lines) + "\n"


def _list(choices):
    def parse(text):
        values = [v.strip() for v in text.split(",") if v.strip()]
        unknown = [v for v in values if v not in choices]
        if unknown or not values:
            raise argparse.ArgumentTypeError(f"choose from {','.join(choices)}, got {text!r}")
        return values
    return parse


def _batches(text):
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be positive integers, got {text!r}")
    return values


def _count(minimum):
    def parse(text):
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightlip-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", type=Path, help="teacher checkpoint (default: random Wav2Lip weights)")
    parser.add_argument("--student", type=Path, help="student checkpoint (default: lightlip_ros/assets/student.pt)")
    parser.add_argument("--teacher-plan", type=Path, help="plan.json of the teacher (INT8 ranges, mixed)")
    parser.add_argument("--student-plan", type=Path, help="plan.json of the student (INT8 ranges, mixed)")
    parser.add_argument("--models", type=_list(MODELS), default=list(MODELS), help="default: teacher,student")
    parser.add_argument("--engines", type=_list(ENGINES), default=list(ENGINES),
                        help="default: torch,onnxruntime,tensorrt (those missing are reported as skipped)")
    parser.add_argument("--precisions", type=_list(PRECISIONS), default=list(PRECISIONS),
                        help="default: fp32,fp16,int8,mixed")
    parser.add_argument("--batches", type=_batches, default=[1, 4], help="batch sizes (default: 1,4)")
    parser.add_argument("--warmup", type=_count(0), default=2, help="untimed calls first (default: 2)")
    parser.add_argument("--iterations", type=_count(1), default=10, help="timed calls per row (default: 10)")
    parser.add_argument("--threads", type=_count(1), default=os.cpu_count() or 1,
                        help="CPU threads for PyTorch and ONNX Runtime (default: all cores)")
    parser.add_argument("--work-dir", type=Path, default=Path("runs/bench/work"),
                        help="cache of ONNX files and engines (default: runs/bench/work)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="bench.md and bench.json go here")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def bench():
        report = run_bench(args)
        atomic_write_json(args.out / "bench.json", report)
        table = markdown(report)
        atomic_write_text(args.out / "bench.md", table)
        print(table, end="")

    return run_command("lightlip-bench", bench)


if __name__ == "__main__":
    sys.exit(main())
