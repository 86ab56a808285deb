"""lightlip-quant: selective mixed precision for a LightLip generator.

    lightlip-quant sensitivity --model student.pt --data data/synth --out runs/quant
    lightlip-quant export      --model student.pt --plan runs/quant/plan.json --out runs/quant/onnx
    lightlip-quant evaluate    --onnx-dir runs/quant/onnx --data data/synth --out runs/quant

`sensitivity` calibrates every convolution's input on the training split, quantizes one layer at a time to
INT8, ranks the layers by the damage on the held-out split and keeps the most sensitive ones in FP16 within
a budget (plan.json + sensitivity.md; statistics cached in <out>/cache, so a rerun resumes). `export` writes
FP32, FP16, INT8 and mixed ONNX files with BatchNorm folded and a per-layer precision report. `evaluate`
runs those files in ONNX Runtime on the held-out split and writes the quality table.
"""
from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import cv2
import torch

from lightlip_ros.atomic_files import atomic_write_json, atomic_write_text
from lightlip_ros.engines.base import FP32, PRECISIONS
from lightlip_ros.errors import run_command
from lightlip_ros.models import load_generator

from .calibration import DEFAULT_PERCENTILE, METHODS
from .evaluate import (comparison_image, dataset_clips, evaluate_files, media_clip, quality_json,
                       quality_markdown)
from .export import ExportError, export_precisions
from .layers import quantizable_layers
from .plan import PlanError, QuantPlan
from .samples import SampleError, SampleSet, dataset_samples
from .sensitivity import make_plan

DEFAULT_BUDGET_DB = 0.1


def _add_samples(parser, splits):
    source = parser.add_argument_group("samples (a data set, or one face image and one speech file)")
    source.add_argument("--data", type=Path, help="data set root in the Wav2Lip layout (lightlip-data synth)")
    for name, default, role in splits:
        source.add_argument(f"--{name}-split", default=default, help=f"split for {role} (default: {default})")
    source.add_argument("--face", type=Path, help="a face image, instead of --data")
    source.add_argument("--audio", type=Path, help="a speech recording to go with --face")


def _uses_data(args) -> bool:
    """True for --data, False for --face/--audio; a SampleError for anything else."""
    if args.data is not None and (args.face is not None or args.audio is not None):
        raise SampleError("give either --data or --face/--audio, not both")
    if args.data is None and (args.face is None or args.audio is None):
        raise SampleError("give --data ROOT, or both --face IMAGE and --audio SPEECH")
    return args.data is not None


def _samples(args, split, count) -> SampleSet:
    if _uses_data(args):
        return dataset_samples(args.data, split, count, args.seed)
    return SampleSet.from_media(args.face, args.audio, limit=count)


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightlip-quant", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    sens = commands.add_parser("sensitivity", help="calibrate, rank layers by INT8 sensitivity, write a plan")
    sens.add_argument("--model", type=Path, required=True, help="generator checkpoint (any format LightLip loads)")
    _add_samples(sens, [("calib", "train", "calibration"), ("eval", "val", "ranking the layers (held out)")])
    sens.add_argument("--calib-samples", type=_positive, default=256, help="calibration frames (default: 256)")
    sens.add_argument("--eval-samples", type=_positive, default=256, help="held-out frames (default: 256)")
    sens.add_argument("--seed", type=int, default=0, help="which windows are drawn from the data set")
    sens.add_argument("--method", choices=METHODS, default="percentile",
                      help="how activation ranges are read off the histograms (default: percentile; entropy is "
                           "the criterion of TensorRT's default calibrator)")
    sens.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                      help=f"for --method percentile (default: {DEFAULT_PERCENTILE})")
    budget = sens.add_mutually_exclusive_group()
    budget.add_argument("--top-k", type=int, help="keep exactly the K most sensitive layers in FP16")
    budget.add_argument("--max-psnr-drop", type=float,
                        help=f"keep the fewest layers in FP16 for a PSNR drop <= this many dB (default: "
                             f"{DEFAULT_BUDGET_DB})")
    sens.add_argument("--batch-size", type=_positive, default=32)
    sens.add_argument("--out", type=Path, default=Path("runs/quant"), help="output folder (default: runs/quant)")

    export = commands.add_parser("export", help="write FP32/FP16/INT8/mixed ONNX files and a precision report")
    export.add_argument("--model", type=Path, required=True, help="generator checkpoint")
    export.add_argument("--plan", type=Path, help="plan.json from `sensitivity` (needed for int8 and mixed)")
    export.add_argument("--out", type=Path, default=Path("runs/quant/onnx"), help="output folder")
    export.add_argument("--precisions", default=",".join(PRECISIONS),
                        help=f"comma-separated subset of {','.join(PRECISIONS)} (default: all)")
    export.add_argument("--stem", default="generator", help="file names are <stem>.<precision>.onnx")

    evaluate = commands.add_parser("evaluate", help="quality of exported files on the held-out split")
    evaluate.add_argument("--onnx-dir", type=Path, required=True, help="folder written by `export`")
    evaluate.add_argument("--stem", default="generator")
    _add_samples(evaluate, [("eval", "test", "the held-out evaluation")])
    evaluate.add_argument("--max-clips", type=_positive, help="evaluate only the split's first N clips")
    evaluate.add_argument("--eval-samples", type=_positive, help="with --face/--audio: at most N frames")
    evaluate.add_argument("--batch-size", type=_positive, default=32)
    evaluate.add_argument("--out", type=Path, help="folder for quality.md and quality.json (default: --onnx-dir)")

    for command in (sens, export, evaluate):
        command.add_argument("--threads", type=_positive, help="CPU threads (default: torch's choice)")
        command.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def run_sensitivity(args) -> None:
    if args.top_k is not None and args.top_k < 0:
        raise PlanError(f"--top-k must be >= 0, got {args.top_k}")
    budget_db = args.max_psnr_drop if args.top_k is None else None
    if args.top_k is None and budget_db is None:
        budget_db = DEFAULT_BUDGET_DB
    model = load_generator(args.model)
    layer_count = len(quantizable_layers(model))
    if args.top_k is not None and args.top_k > layer_count:
        raise PlanError(f"--top-k {args.top_k} exceeds the model's {layer_count} convolutions")
    calibration = _samples(args, args.calib_split, args.calib_samples)
    evaluation = _samples(args, args.eval_split, args.eval_samples) if args.data is not None else calibration
    plan = make_plan(model, calibration, evaluation, args.method, args.percentile, args.top_k, budget_db,
                     cache_dir=args.out / "cache", batch_size=args.batch_size, model_path=str(args.model),
                     progress=not args.quiet)
    plan.save(args.out / "plan.json")
    atomic_write_text(args.out / "sensitivity.md", plan.markdown())
    final = plan.steps[-1]
    print(f"FP16 layers ({len(plan.fp16_layers)} of {len(plan.layers)}): {', '.join(plan.fp16_layers) or 'none'}")
    print(f"INT8 everywhere: {plan.steps[0]['psnr_drop_db']:+.3f} dB, mixed: {final['psnr_drop_db']:+.3f} dB "
          f"against FP32 ({plan.evaluation['fp32_psnr_db']:.2f} dB)")
    print(f"wrote {args.out / 'plan.json'} and {args.out / 'sensitivity.md'}")


def run_export(args) -> None:
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    plan = QuantPlan.load(args.plan) if args.plan is not None else None
    model = load_generator(args.model)
    written = export_precisions(model, args.out, plan, precisions, stem=args.stem)
    for precision, path in written.items():
        print(f"{precision:>5}: {path}")
    print(f"per-layer precision: {args.out / (args.stem + '.precision.md')}")


def run_evaluate(args) -> None:
    files = {precision: args.onnx_dir / f"{args.stem}.{precision}.onnx" for precision in PRECISIONS}
    files = {precision: path for precision, path in files.items() if path.is_file()}
    if FP32 not in files:
        raise ExportError(f"{args.onnx_dir}: no {args.stem}.fp32.onnx to compare with (run `lightlip-quant export`)")
    if _uses_data(args):
        clips = dataset_clips(args.data, args.eval_split, args.max_clips)
        first_clip = next(clips)  # read once: evaluated, then shown in comparison.png
        clips = itertools.chain([first_clip], clips)
        source = f"`{args.data}` split `{args.eval_split}`"
        if args.max_clips:
            source += f" (first {args.max_clips} clips)"
    else:
        clips = [media_clip(args.face, args.audio, args.eval_samples)]
        first_clip, source = clips[0], clips[0].clip
    threads = torch.get_num_threads()
    table = evaluate_files(files, clips, batch_size=args.batch_size, threads=threads, progress=not args.quiet)
    out = args.out or args.onnx_dir
    out.mkdir(parents=True, exist_ok=True)
    markdown = quality_markdown(table, source)
    atomic_write_text(out / "quality.md", markdown)
    atomic_write_json(out / "quality.json", {"source": source, "files": quality_json(table)})
    if not cv2.imwrite(str(out / "comparison.png"), comparison_image(files, first_clip, threads=threads)):
        raise ExportError(f"cannot write {out / 'comparison.png'}")
    print(markdown, end="")
    print(f"wrote {out / 'quality.md'}, quality.json and comparison.png (lower faces of {first_clip.clip})")


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    commands = {"sensitivity": run_sensitivity, "export": run_export, "evaluate": run_evaluate}
    return run_command(f"lightlip-quant {args.command}", lambda: commands[args.command](args),
                       interrupted="interrupted (rerun the same command to resume)")


if __name__ == "__main__":
    sys.exit(main())
