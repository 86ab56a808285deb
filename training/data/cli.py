"""lightlip-data: make and check talking-face data (preprocess, synth) and evaluate generators on it (eval,
sync-signal). See docs/data.md."""
import argparse
import json
import sys
from pathlib import Path

from lightlip_ros.errors import run_command

from .layout import SPLITS, DataError


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _fraction(text):
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="lightlip-data", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pre = commands.add_parser("preprocess", help="videos -> Wav2Lip layout (25 fps face crops + 16 kHz audio)",
                              description="Turn videos into the Wav2Lip layout. Resumable: finished clips are "
                                          "kept, unusable videos are listed with a reason and not retried.")
    pre.add_argument("inputs", nargs="+", help="video files or folders (searched recursively)")
    pre.add_argument("--out", required=True, help="output root")
    pre.add_argument("--split", default="train", choices=SPLITS, help="file list the clips are added to")
    pre.add_argument("--workers", type=_positive_int, default=1, help="parallel processes (default 1)")
    pre.add_argument("--crop-size", type=_non_negative_int, default=96,
                     help="stored crop size in pixels; 0 keeps native crops (default 96)")
    pre.add_argument("--pads", type=_non_negative_int, nargs=4, default=(0, 10, 0, 0),
                     metavar=("TOP", "BOTTOM", "LEFT", "RIGHT"),
                     help="pixels added to the face box (default 0 10 0 0, as inference crops)")
    pre.add_argument("--no-smooth", action="store_true", help="do not smooth boxes over 5 frames")
    pre.add_argument("--detect-every", type=_positive_int, default=1,
                     help="run the detector on every Nth frame and interpolate (default 1)")
    pre.add_argument("--max-missing", type=_fraction, default=0.1,
                     help="skip a video when more than this fraction of frames has no face (default 0.1)")
    pre.add_argument("--min-face", type=_positive_int, default=48, help="smallest face width in pixels")
    pre.add_argument("--retry-skipped", action="store_true", help="retry videos skipped by an earlier run")
    pre.add_argument("--quiet", action="store_true", help="no progress bar")

    synth = commands.add_parser("synth", help="synthetic talking-face benchmark with ground truth",
                                description="Render a synthetic talking-face benchmark: real portraits whose "
                                            "mouths follow espeak-ng and Festival speech, in the Wav2Lip layout plus "
                                            "truth.json per clip. Resumable: rerun the same command.")
    synth.add_argument("--out", required=True, help="output root")
    synth.add_argument("--portraits", nargs="*", default=[], help="folders of portrait images (identities)")
    synth.add_argument("--no-astronaut", action="store_true",
                       help="do not use the astronaut photo (training/data/synth/astronaut.jpg) as an identity")
    synth.add_argument("--identities", type=_non_negative_int, default=0,
                       help="training identities (default: all that are not held out)")
    synth.add_argument("--heldout-identities", type=int, default=-1,
                       help="identities held out for each of val and test (default: with --identities, the "
                            "rest split evenly; without, a sixth each)")
    synth.add_argument("--sentences", type=_positive_int, default=40, help="training sentences (default 40)")
    synth.add_argument("--heldout-sentences", type=_positive_int, default=10,
                       help="held-out sentences for each of val and test (default 10)")
    synth.add_argument("--festival-share", type=_fraction, default=0.5,
                       help="share of clips spoken by a Festival voice instead of the identity's espeak-ng "
                            "voice (default 0.5)")
    synth.add_argument("--crop-size", type=_positive_int, default=96, help="crop size in pixels (default 96)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=_positive_int, default=1, help="parallel processes (default 1)")
    synth.add_argument("--quiet", action="store_true", help="no progress bar")

    ev = commands.add_parser("eval", help="PSNR/SSIM/LMD/mouth-opening/sync of generator models",
                             description="Evaluate generator models (PyTorch checkpoints, ONNX files, TensorRT "
                                         "engines) on a split; writes eval.md and eval.json and prints the table.")
    ev.add_argument("root", help="data root (Wav2Lip layout)")
    ev.add_argument("--split", default="test", choices=SPLITS)
    ev.add_argument("--model", "--checkpoint", dest="models", nargs="*", default=[],
                    help="generator files: checkpoints (teacher or student), .onnx files, TensorRT .engine files")
    ev.add_argument("--syncnet", help="SyncNet checkpoint for LSE-D/LSE-C")
    ev.add_argument("--max-clips", type=_positive_int, help="evaluate only the first N clips")
    ev.add_argument("--reference", choices=("first", "random", "widest"), default="first",
                    help="identity reference frame: the clip's first frame (a still face, as a robot uses), "
                         "a seeded random frame, or the widest-open mouth of the truth (against first: how much "
                         "of the reference's mouth the output copies)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--no-baselines", action="store_true", help="leave out the ground-truth and reference-copy rows")
    ev.add_argument("--out", help="folder for eval.md and eval.json")
    ev.add_argument("--threads", type=_positive_int, default=1, help="CPU threads per inference (default 1)")
    ev.add_argument("--quiet", action="store_true", help="no progress bar")

    speech = commands.add_parser("eval-speech", help="does the generated mouth follow speech that has no video?",
                                 description="Drive generator models (checkpoints, ONNX files, TensorRT engines) "
                                             "with speech files on still faces, "
                                             "prepared as the node prepares them, and measure the generated "
                                             "mouth opening (landmarker inner-lip gap over the outer eye "
                                             "corners' distance): its correlation with the speech envelope, "
                                             "its spread and 95th percentile, and its mean in pauses and in "
                                             "speech. Real speakers: std 0.02-0.06, p95 0.08-0.22.")
    speech.add_argument("--model", "--checkpoint", dest="models", nargs="+", required=True,
                        help="generator files: checkpoints, .onnx files, TensorRT .engine files")
    speech.add_argument("--audio", nargs="+", required=True, help="speech files (any rate and channels)")
    speech.add_argument("--face", nargs="+",
                        help="face images (default: the bundled face)")
    speech.add_argument("--out", help="folder for speech.md and speech.json")
    speech.add_argument("--threads", type=_positive_int, default=1, help="CPU threads per inference (default 1)")
    speech.add_argument("--quiet", action="store_true", help="no progress bar")

    signal = commands.add_parser("sync-signal", help="does the data carry lip sync? landmarker mouth opening "
                                                     "vs audio loudness",
                                 description="Correlate the mouth opening measured by the independent "
                                             "landmarker with the audio RMS envelope per frame (and the "
                                             "synthetic jaw truth when present).")
    signal.add_argument("root", help="data root (Wav2Lip layout)")
    signal.add_argument("--split", default="test", choices=SPLITS)
    signal.add_argument("--max-clips", type=_positive_int)
    signal.add_argument("--out", help="JSON file for per-clip results")
    signal.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _preprocess(args):
    from .preprocess import PreprocessConfig, preprocess

    config = PreprocessConfig(crop_size=args.crop_size, pads=tuple(args.pads), smooth=not args.no_smooth,
                              detect_every=args.detect_every, max_missing=args.max_missing, min_face=args.min_face)
    summary = preprocess(args.inputs, args.out, config, split=args.split, workers=args.workers,
                         retry_skipped=args.retry_skipped, progress=not args.quiet)
    print(json.dumps(summary))


def _synth(args):
    from .synth import SynthConfig, generate_benchmark

    config = SynthConfig(portraits=tuple(args.portraits), include_astronaut=not args.no_astronaut,
                         identities=args.identities, heldout_identities=args.heldout_identities,
                         sentences=args.sentences, heldout_sentences=args.heldout_sentences,
                         crop_size=args.crop_size, seed=args.seed, festival_share=args.festival_share)
    summary = generate_benchmark(args.out, config, workers=args.workers, progress=not args.quiet)
    print(json.dumps(summary))
    if summary["failed"]:
        raise DataError(f"{summary['failed']} clips failed (see above); rerun to retry them")


def _eval(args):
    import torch

    from .evaluate import evaluate, markdown_table, write_report

    torch.set_num_threads(args.threads)
    for path in args.models + ([args.syncnet] if args.syncnet else []):
        if not Path(path).is_file():
            raise DataError(f"{path}: no such model file")
    report = evaluate(args.root, args.split, args.models, args.syncnet, args.max_clips, args.reference,
                      args.seed, baselines=not args.no_baselines, threads=args.threads, progress=not args.quiet)
    table = markdown_table(report)
    print(table, end="")
    if args.out:
        write_report(report, args.out, table)
        print(f"wrote {Path(args.out) / 'eval.md'} and eval.json")


def _eval_speech(args):
    import torch

    from .evaluate import evaluate_speech, speech_markdown
    from lightlip_ros.atomic_files import atomic_write_json, atomic_write_text
    from lightlip_ros.face import BUNDLED_FACE

    torch.set_num_threads(args.threads)
    args.face = args.face or [str(BUNDLED_FACE)]
    for path in args.models + args.audio + args.face:
        if not Path(path).is_file():
            raise DataError(f"{path}: no such file")
    report = evaluate_speech(args.models, args.audio, args.face, threads=args.threads, progress=not args.quiet)
    table = speech_markdown(report)
    print(table, end="")
    if args.out:
        atomic_write_json(Path(args.out) / "speech.json", report)
        atomic_write_text(Path(args.out) / "speech.md", table)
        print(f"wrote {Path(args.out) / 'speech.md'} and speech.json")


def _sync_signal(args):
    from .evaluate import sync_signal
    from lightlip_ros.atomic_files import atomic_write_json

    result = sync_signal(args.root, args.split, args.max_clips, progress=not args.quiet)
    print(json.dumps(result["summary"], indent=1))
    if args.out:
        atomic_write_json(args.out, result)


def main(argv=None):
    args = build_parser().parse_args(argv)
    handlers = {"preprocess": _preprocess, "synth": _synth, "eval": _eval, "eval-speech": _eval_speech,
                "sync-signal": _sync_signal}
    return run_command(f"lightlip-data {args.command}", lambda: handlers[args.command](args),
                       interrupted="interrupted (rerun the same command to resume)")


if __name__ == "__main__":
    sys.exit(main())
