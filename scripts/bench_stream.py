#!/usr/bin/env python3
"""End-to-end benchmark of the streaming core (no ROS): audio chunks + face image -> pasted frames.

Three runs over the same speech:
  1. as fast as possible: chunks pushed back to back, frames rendered as they become due -> frames/s;
  2. burst: the whole speech pushed first, then rendered in batches (a speech synthesiser's burst);
  3. real time: each chunk pushed when its last sample would have been captured -> CPU use (process CPU
     time / wall time), latency from the arrival of the chunk that completed a frame's 200 ms window to the
     rendered frame (p50/p95), and the same measured from the capture of the frame's last needed sample.
Per-stage times (mel, inference, paste, total per frame) come from the core's own statistics.

    .venv/bin/python scripts/bench_stream.py                       # default student, random weights, ORT
    .venv/bin/python scripts/bench_stream.py --model student.pt --engine torch --chunk-ms 10
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lightlip_ros.engines import ONNXRUNTIME, PREFERENCES
from lightlip_ros.errors import LightLipError, run_command

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

ASSETS = ROOT / "lightlip_ros" / "assets"


class BenchError(LightLipError):
    """A user mistake: one readable line, exit status 1."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=None,
                        help="generator checkpoint or .onnx (default: the paper's student with random weights)")
    parser.add_argument("--engine", default=ONNXRUNTIME, choices=PREFERENCES,
                        help=f"engine preference (default: {ONNXRUNTIME})")
    parser.add_argument("--threads", type=int, default=1, help="inference threads (default: 1)")
    parser.add_argument("--audio", type=Path, default=ASSETS / "speech.wav", help="speech file (any rate)")
    parser.add_argument("--face", type=Path, default=ASSETS / "face.jpg", help="face image")
    parser.add_argument("--chunk-ms", type=float, default=20.0, help="audio chunk length in ms (default: 20)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="times the speech is repeated into one utterance (default: 2)")
    parser.add_argument("--max-batch", type=int, default=8, help="most frames per engine call (default: 8)")
    args = parser.parse_args(argv)
    for name in ("audio", "face"):
        if not getattr(args, name).is_file():
            parser.exit(1, f"bench_stream: error: {getattr(args, name)}: no such file\n")
    if args.model is not None and not args.model.is_file():
        parser.exit(1, f"bench_stream: error: {args.model}: no such model file\n")
    if args.threads < 1 or args.repeat < 1 or args.max_batch < 1 or not 1.0 <= args.chunk_ms <= 1000.0:
        parser.exit(1, "bench_stream: error: --threads, --repeat and --max-batch must be >= 1, "
                       "--chunk-ms within 1-1000\n")
    return args


def open_engine(args, workdir: Path):
    import torch

    from lightlip_ros.engines import EngineOptions, select_engine
    from lightlip_ros.models import save_generator, student

    torch.set_num_threads(args.threads)
    model = args.model
    if model is None:
        torch.manual_seed(0)
        model = save_generator(student(), workdir / "student-random.pt")
    engine, reason = select_engine(model, args.engine,
                                   options=EngineOptions(threads=args.threads, cache_dir=workdir / "cache"))
    return engine, reason


def make_core(engine, face, config):
    from lightlip_ros.stream import TalkingFaceStream

    core = TalkingFaceStream(engine, config, clock=time.perf_counter)
    update = core.set_face(face)
    if not update.ok:
        raise BenchError(f"no face in the face image: {update.note}")
    return core


def run_fast(core, audio, chunk):
    """Every chunk at once; returns (talking frames, wall seconds)."""
    start = time.perf_counter()
    talking = 0
    for offset in range(0, audio.size, chunk):
        core.push_audio(audio[offset:offset + chunk], stamp_s=offset / 16000)
        talking += sum(f.talking for f in core.poll())
    core.finish_utterance()
    talking += sum(f.talking for f in core.poll())
    return talking, time.perf_counter() - start


def run_burst(core, audio, chunk):
    """The whole speech pushed first, then rendered by one poll in batches; returns (frames, wall s)."""
    start = time.perf_counter()
    for offset in range(0, audio.size, chunk):
        core.push_audio(audio[offset:offset + chunk], stamp_s=offset / 16000)
    core.finish_utterance()
    frames = sum(f.talking for f in core.poll())
    return frames, time.perf_counter() - start


def run_realtime(core, audio, chunk):
    """Chunks pushed at capture pace; returns (frames, wall s, CPU s, capture-to-frame latencies s)."""
    from lightlip_ros.stream import frame_lookahead_s

    frames, capture_latency = 0, []
    start = time.perf_counter() + 0.05
    cpu_start = time.process_time()
    for offset in range(0, audio.size, chunk):
        piece = audio[offset:offset + chunk]
        captured = start + (offset + piece.size) / 16000
        delay = captured - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        core.push_audio(piece, stamp_s=start + offset / 16000)
        for frame in core.poll():
            if frame.talking:
                frames += 1
                needed = frame.stamp_s + frame_lookahead_s(frame.index)  # capture of its last needed sample
                capture_latency.append(time.perf_counter() - needed)
    core.finish_utterance()
    frames += sum(f.talking for f in core.poll())
    wall = time.perf_counter() - start
    return frames, wall, time.process_time() - cpu_start, capture_latency


def stage_table(stats):
    return "  ".join(f"{name} {values['mean']:.2f}/{values['p95']:.2f}" for name, values in stats.stage_ms.items())


def run(args):
    import cv2

    from lightlip_ros.audio import AudioError, load_audio
    from lightlip_ros.engines import EngineError
    from lightlip_ros.stream import StreamConfig

    face = cv2.imread(str(args.face))
    if face is None:
        raise BenchError(f"{args.face}: not a readable image")
    try:
        audio = np.tile(load_audio(args.audio), args.repeat)
    except AudioError as error:
        raise BenchError(str(error)) from error
    chunk = max(1, int(round(args.chunk_ms * 16)))
    config = StreamConfig(idle_fps=0, max_batch=args.max_batch, stats_window=100000, max_buffered_s=30.0)
    with tempfile.TemporaryDirectory(prefix="lightlip-bench-") as workdir:
        try:
            engine, reason = open_engine(args, Path(workdir))
        except EngineError as error:
            raise BenchError(str(error)) from error
        print(f"engine: {engine.describe()}\n  why: {reason}")
        print(f"audio: {audio.size / 16000:.1f} s in {args.chunk_ms:g} ms chunks; "
              f"face {face.shape[1]}x{face.shape[0]}; {os.cpu_count()} CPU cores, "
              f"load average {os.getloadavg()[0]:.1f}")

        core = make_core(engine, face, config)
        frames, wall = run_fast(core, audio, chunk)
        stats = core.stats()
        print(f"\nas fast as possible: {frames} frames in {wall:.2f} s = {frames / wall:.1f} frames/s")
        print(f"  per frame, ms mean/p95: {stage_table(stats)}")

        core = make_core(engine, face, config)
        frames, wall = run_burst(core, audio, chunk)
        print(f"burst (all speech first, then batches of up to {args.max_batch}): {frames} frames in {wall:.2f} s "
              f"= {frames / wall:.1f} frames/s")
        print(f"  per frame, ms mean/p95: {stage_table(core.stats())}")

        core = make_core(engine, face, config)
        frames, wall, cpu, capture_latency = run_realtime(core, audio, chunk)
        stats = core.stats()
        duration = audio.size / 16000
        p50, p95 = np.percentile(np.array(capture_latency) * 1e3, [50, 95]) if capture_latency else (0.0, 0.0)
        print(f"\nreal time: {frames} frames for {duration:.2f} s of speech = "
              f"{frames / duration:.1f} frames/s of audio; "
              f"CPU {cpu:.2f} s over {wall:.2f} s wall = {cpu / wall:.2f} cores")
        print(f"  latency, arrival of the completing chunk -> frame: p50 {stats.latency_ms_p50:.1f} ms, "
              f"p95 {stats.latency_ms_p95:.1f} ms")
        print(f"  latency, capture of the last sample a frame needs -> frame (adds the chunk length): "
              f"p50 {p50:.1f} ms, p95 {p95:.1f} ms (beyond the inherent 162.5-172.5 ms)")
        print(f"  per frame, ms mean/p95: {stage_table(stats)}")
        print(f"  frames dropped {stats.frames_dropped}, audio samples dropped {stats.audio_dropped}")
    return 0


def main(argv=None):
    args = parse_args(argv)
    return run_command("bench_stream", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
