"""`lightlip-demo`: the main job in one command.

Starts the real talking-face node as its own process, feeds it a face photo and speech through the
ROS 2 topics at real time, records the published frames with the speech to an MP4 (H.264 + AAC) and
prints frames, fps and latency. Defaults: the bundled student, face and speech.
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import soundfile

from lightlip_ros import ASSETS
from lightlip_ros.engines import AUTO, PREFERENCES
from lightlip_ros.errors import LightLipError, run_command
from lightlip_ros.face import BUNDLED_FACE

CHUNK_SECONDS = 0.02
FPS = 25


class DemoError(LightLipError):
    """A user mistake or a missing tool: reported in one line."""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="lightlip-demo",
        description="Run the talking-face node on a face and speech and record demo/talk.mp4.")
    speech = parser.add_mutually_exclusive_group()
    speech.add_argument("--text", help="sentence to speak (synthesised with espeak-ng)")
    speech.add_argument("--audio", type=Path, help="speech file (any sample rate and channel count)")
    parser.add_argument("--face", type=Path, default=BUNDLED_FACE, help="face photo")
    parser.add_argument("--model", default="", help="generator checkpoint/ONNX/engine (default: bundled)")
    parser.add_argument("--engine", default=AUTO, choices=PREFERENCES)
    parser.add_argument("--voice", default="en-us", help="espeak-ng voice for --text")
    parser.add_argument("--output", type=Path, default=Path("demo") / "talk.mp4", help="MP4 to write")
    parser.add_argument("--timeout", type=float, default=60.0,
                        help="seconds to wait for the node to start and for the last frame")
    return parser.parse_args(argv)


def synthesise_speech(text, voice, directory):
    if not shutil.which("espeak-ng"):
        raise DemoError("--text needs espeak-ng (sudo apt-get install espeak-ng)")
    path = Path(directory) / "speech.wav"
    # espeak-ng is GPL: it runs as its own process, never linked into LightLip.
    result = subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], capture_output=True, text=True)
    if result.returncode != 0 or not path.exists():
        raise DemoError(f"espeak-ng failed: {result.stderr.strip() or 'no output'}")
    return path


def read_speech(path):
    from lightlip_ros.audio import SAMPLE_RATE, load_audio

    if not Path(path).is_file():
        raise DemoError(f"audio file not found: {path}")
    try:
        samples = load_audio(str(path))
    except Exception as error:  # soundfile/librosa raise many types for unreadable files
        raise DemoError(f"cannot read audio {path}: {error}") from None
    if samples.size < SAMPLE_RATE // FPS:
        raise DemoError(f"audio {path} is shorter than one frame (40 ms)")
    return samples, SAMPLE_RATE


def read_face(path):
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DemoError(f"cannot read face image {path}")
    return image


def ros_environment():
    """The node and this process meet on one domain, on this host only, unless the user chose."""
    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randrange(1, 100)))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    # 512x512 frames do not fit Fast DDS's default shared-memory segment (docs/display.md).
    env.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(ASSETS / "fastdds_localhost.xml"))
    keys = ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "FASTDDS_DEFAULT_PROFILES_FILE")
    os.environ.update({key: env[key] for key in keys})
    return env


def start_node(args, env, log_path):
    executable = Path(sys.executable).parent / "talking_face_node"
    argv = [str(executable) if executable.exists() else shutil.which("talking_face_node") or ""]
    if not argv[0]:
        raise DemoError("talking_face_node is not installed: run `make demo` (or scripts/bootstrap.sh)")
    argv += ["--ros-args", "-p", f"engine:={args.engine}", "-p", "idle_rate:=0.0"]
    if args.model:
        argv += ["-p", f"model_path:={Path(args.model).resolve()}"]
    return subprocess.Popen(argv, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT)


def frame_latencies_ms(stamps, received_at, stream_start, sent_at, chunk_seconds, duration):
    """For each frame, the time from publishing the chunk that completes its audio window to receiving
    the frame. Frame k shows time t and needs audio up to t + frame_lookahead_s(k), or the end of the
    speech."""
    from lightlip_ros.stream import FRAME_PERIOD_S, frame_lookahead_s

    latencies = []
    for stamp, received in zip(stamps, received_at):
        offset_s = (stamp - stream_start) / 1e9
        needed_until = min(offset_s + frame_lookahead_s(round(offset_s / FRAME_PERIOD_S)), duration)
        chunk = min(int(np.ceil(needed_until / chunk_seconds)) - 1, len(sent_at) - 1)
        latencies.append((received - sent_at[max(chunk, 0)]) * 1e3)
    return np.array(latencies)


def write_mp4(frames, samples, sample_rate, output, workdir):
    """Frames (BGR, 25 fps) + speech -> H.264/AAC MP4 that plays in a browser."""
    if not shutil.which("ffmpeg"):
        raise DemoError("writing the MP4 needs ffmpeg (sudo apt-get install ffmpeg)")
    height, width = frames[0].shape[:2]
    wav = Path(workdir) / "speech16k.wav"
    soundfile.write(wav, samples, sample_rate)
    output.parent.mkdir(parents=True, exist_ok=True)
    command = ["ffmpeg", "-y", "-loglevel", "error",
               "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{width}x{height}", "-r", str(FPS), "-i", "-",
               "-i", str(wav),
               # yuv420p needs even sizes; browsers need yuv420p.
               "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-pix_fmt", "yuv420p",
               "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(output)]
    encoder = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    _, error = encoder.communicate(b"".join(np.ascontiguousarray(frame).tobytes() for frame in frames))
    if encoder.returncode != 0:
        raise DemoError(f"ffmpeg failed: {error.decode(errors='replace').strip()}")


def write_strip(frames, face_box, path, count=8):
    """A row of mouth-region crops across the clip, for the README."""
    x, y, w, h = face_box
    picks = np.linspace(0, len(frames) - 1, count).round().astype(int)
    crops = [cv2.resize(frames[i][y:y + h, x:x + w], (160, 160)) for i in picks]
    cv2.imwrite(str(path), np.concatenate(crops, axis=1))


def run(args):
    import rclpy
    from rclpy.qos import QoSProfile

    from lightlip_msgs.msg import AudioChunk, TalkStatus
    from lightlip_ros.image_msgs import bgr_to_image, image_to_bgr
    from lightlip_ros.pcm import float_to_s16
    from lightlip_ros.ros_common import LATCHED
    from sensor_msgs.msg import Image

    face = read_face(args.face)
    with tempfile.TemporaryDirectory(prefix="lightlip-demo-") as workdir:
        speech_path = args.audio or (synthesise_speech(args.text, args.voice, workdir) if args.text
                                     else ASSETS / "speech.wav")
        samples, sample_rate = read_speech(speech_path)
        duration = samples.size / sample_rate
        expected_frames = int(np.ceil(duration * FPS - 1e-9))
        env = ros_environment()
        log_path = Path(workdir) / "talking_face_node.log"
        node_process = start_node(args, env, log_path)
        rclpy.init()
        node = rclpy.create_node("lightlip_demo")
        face_publisher = node.create_publisher(Image, "face_image", LATCHED)
        audio_publisher = node.create_publisher(AudioChunk, "audio", QoSProfile(depth=200))
        frames, status = {}, {}
        node.create_subscription(
            Image, "face_frames",
            lambda m: frames.__setitem__(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec, (m, time.monotonic())),
            QoSProfile(depth=200))
        node.create_subscription(TalkStatus, "talk_status", lambda m: status.__setitem__("last", m), LATCHED)

        def spin_until(predicate, what):
            deadline = time.monotonic() + args.timeout
            while not predicate():
                if node_process.poll() is not None:
                    raise DemoError(f"talking_face_node exited ({node_process.returncode}) while waiting for {what}; "
                                    f"its log: {log_path.read_text(errors='replace').strip().splitlines()[-1:]}")
                if time.monotonic() > deadline:
                    waited_for = what() if callable(what) else what
                    raise DemoError(f"timed out after {args.timeout:.0f} s waiting for {waited_for}")
                rclpy.spin_once(node, timeout_sec=0.02)

        try:
            started = time.monotonic()
            print(f"lightlip-demo: starting talking_face_node (ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']})", flush=True)
            face_publisher.publish(bgr_to_image(face))
            spin_until(lambda: "last" in status and status["last"].state == TalkStatus.STATE_IDLE
                       and audio_publisher.get_subscription_count() > 0, "the node to accept the face")
            print(f"lightlip-demo: node ready in {time.monotonic() - started:.1f} s: "
                  f"engine {status['last'].engine} ({status['last'].engine_reason})", flush=True)

            pcm = float_to_s16(samples)
            chunk_samples = int(sample_rate * CHUNK_SECONDS)
            stream_start = node.get_clock().now().nanoseconds
            feed_start = time.monotonic()
            sent_at = []  # monotonic time each chunk was published
            for index, offset in enumerate(range(0, pcm.size, chunk_samples)):
                # Real time: chunk i leaves at i x 20 ms, as a microphone would deliver it.
                spin_until(lambda: time.monotonic() >= feed_start + index * CHUNK_SECONDS, "the audio clock")
                chunk = AudioChunk(sample_rate=sample_rate, channels=1, sample_format=AudioChunk.FORMAT_S16LE)
                stamp = stream_start + offset * 10**9 // sample_rate
                chunk.header.stamp.sec, chunk.header.stamp.nanosec = divmod(stamp, 10**9)
                chunk.data = pcm[offset:offset + chunk_samples].tobytes()
                audio_publisher.publish(chunk)
                sent_at.append(time.monotonic())
            stream_end = stream_start + int(duration * 1e9)

            def in_clip():
                return [stamp for stamp in frames if stream_start <= stamp < stream_end]

            spin_until(lambda: len(in_clip()) >= expected_frames,
                       lambda: f"{expected_frames} frames (received {len(in_clip())}; status: "
                               f"{status['last'].state_name}, {status['last'].frames_published} published, "
                               f"{status['last'].frames_dropped} dropped, last error: {status['last'].last_error!r})")
            feed_seconds = time.monotonic() - feed_start
            last_status = status["last"]
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
            node_process.send_signal(subprocess.signal.SIGINT)
            try:
                node_process.wait(10)
            except subprocess.TimeoutExpired:
                node_process.kill()

        stamps = sorted(in_clip())
        video = [image_to_bgr(frames[stamp][0]) for stamp in stamps]
        latencies_ms = frame_latencies_ms(stamps, [frames[s][1] for s in stamps], stream_start, sent_at,
                                          chunk_samples / sample_rate, len(pcm) / sample_rate)
        write_mp4(video, samples, sample_rate, args.output, workdir)
        strip_path = args.output.with_name(args.output.stem + "_strip.png")
        from lightlip_ros.face import detect_face

        write_strip(video, detect_face(face) or (0, 0, face.shape[1], face.shape[0]), strip_path)

    spacing_ms = np.diff(stamps).mean() / 1e6 if len(stamps) > 1 else 0.0
    print(f"lightlip-demo: wrote {args.output} ({len(video)} frames for {duration:.2f} s of speech at {FPS} fps, "
          f"stamp spacing {spacing_ms:.1f} ms) and {strip_path}")
    print(f"lightlip-demo: {len(video) / feed_seconds:.1f} frames/s while speech streamed at real time; "
          f"latency from the audio a frame needs to its arrival here: p50 {np.percentile(latencies_ms, 50):.0f} ms, "
          f"p95 {np.percentile(latencies_ms, 95):.0f} ms; engine {last_status.engine} {last_status.precision}; "
          f"frames dropped {last_status.frames_dropped}, audio samples dropped {last_status.audio_samples_dropped}")
    return 0


def main(argv=None):
    args = parse_args(argv)
    return run_command("lightlip-demo", lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())
