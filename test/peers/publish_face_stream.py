"""Test peer (its own OS process): plays the talking-face node's part of the display contract at real
time, so that the display is tested without a model.

For frame i with stamp t = t0 + i / fps (the audio time it shows) it publishes, at about t + lag
(plus some jitter, as rendering has), the AudioChunk covering [t, t + 1 / fps) on `audio_out` (16 kHz
mono S16LE, stamp t) and then the bgr8 frame on `face_frames` (stamp t). Once a second a TalkStatus
goes to `talk_status`. The frames show the face with a sweeping bar, a red disc on the frames whose
audio starts with a click (every --click-every-s), and the stamp in milliseconds (mod 2^16) as a
row of black/white blocks, so that a test can read which frame a screen shows (stamp_code()).

It waits for a subscriber on face_frames (and audio_out) before the first frame, publishes --seconds
of stream, prints "done", and stays up until interrupted. Full-size frames need the large shared-memory
segment of lightlip_ros/assets/fastdds_localhost.xml (FASTDDS_DEFAULT_PROFILES_FILE), as the
talking-face node does.
"""
import argparse
import math
import random
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from rclpy.utilities import remove_ros_args

from lightlip_msgs.msg import AudioChunk, TalkStatus
from lightlip_ros.image_msgs import bgr_to_image
from lightlip_ros.ros_common import LATCHED
from sensor_msgs.msg import Image

FACE = Path(__file__).resolve().parents[2] / "lightlip_ros" / "assets" / "face.jpg"
SAMPLE_RATE = 16000
CODE_BITS = 16
CODE_BLOCK = 16   # pixels per code block (square), drawn from the top-left corner
CLICK_S = 0.010
FRAMES_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
AUDIO_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


def stamp_code(stamp_ns):
    """The number a frame with this stamp shows in its block row."""
    return (stamp_ns // 1_000_000) & ((1 << CODE_BITS) - 1)


def read_code(bgr):
    """Reads the block row of a frame (as drawn by draw_frame, possibly scaled and JPEG-compressed)."""
    scale = bgr.shape[1] / 512.0
    bits = 0
    for bit in range(CODE_BITS):
        x = int((bit + 0.5) * CODE_BLOCK * scale)
        y = int(0.5 * CODE_BLOCK * scale)
        if bgr[y, x].mean() > 127:
            bits |= 1 << bit
    return bits


def draw_frame(face, index, fps, stamp_ns, click):
    """The face (512x512) with the frame's markers."""
    frame = face.copy()
    code = stamp_code(stamp_ns)
    for bit in range(CODE_BITS):
        value = 255 if code >> bit & 1 else 0
        frame[:CODE_BLOCK, bit * CODE_BLOCK:(bit + 1) * CODE_BLOCK] = value
    progress = (index % fps) / fps
    cv2.rectangle(frame, (0, 496), (int(512 * progress), 511), (255, 200, 0), thickness=-1)
    if click:
        cv2.circle(frame, (470, 50), 30, (0, 0, 255), thickness=-1)
    return frame


def click_samples(count, click):
    """A chunk of silence, starting with a 1 kHz click when asked."""
    samples = np.zeros(count, dtype=np.int16)
    if click:
        length = int(CLICK_S * SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        samples[:length] = (0.5 * 32767 * np.sin(2 * math.pi * 1000 * t)).astype(np.int16)
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--lag-ms", type=float, default=250.0,
                        help="release time after the stamp (look-ahead plus latency of a real node)")
    parser.add_argument("--jitter-ms", type=float, default=20.0, help="random extra release delay")
    parser.add_argument("--size", type=int, default=512, help="frame width and height in pixels")
    parser.add_argument("--click-every-s", type=float, default=0.5)
    parser.add_argument("--wait-s", type=float, default=30.0, help="how long to wait for subscribers")
    args = parser.parse_args(remove_ros_args(sys.argv)[1:])

    rclpy.init()
    node = rclpy.create_node("face_stream_publisher")
    frames = node.create_publisher(Image, "face_frames", FRAMES_QOS)
    audio = node.create_publisher(AudioChunk, "audio_out", AUDIO_QOS)
    status = node.create_publisher(TalkStatus, "talk_status", LATCHED)
    face = cv2.resize(cv2.imread(str(FACE)), (512, 512))
    try:
        deadline = time.monotonic() + args.wait_s
        while frames.get_subscription_count() == 0 or audio.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                print(f"no subscriber on face_frames and audio_out within {args.wait_s:.0f} s", flush=True)
                return 1
            time.sleep(0.05)
        behind_ms = publish(node, frames, audio, status, face, args)
        print(f"done: published {int(args.seconds * args.fps)} frames, at most {behind_ms:.0f} ms behind "
              f"their release times", flush=True)
        while rclpy.ok():  # keep the participant up until interrupted: the last messages get delivered
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


def publish(node, frames, audio, status, face, args):
    period_ns = 1_000_000_000 // args.fps
    chunk_samples = SAMPLE_RATE // args.fps
    click_every = max(1, round(args.click_every_s * args.fps))
    count = int(args.seconds * args.fps)
    now_ns = node.get_clock().now().nanoseconds
    first_stamp_ns = -(-now_ns // 1_000_000) * 1_000_000  # whole milliseconds
    jitter = random.Random(0)
    released = 0
    behind_ns = 0
    next_status_ns = first_stamp_ns
    for index in range(count):
        stamp_ns = first_stamp_ns + index * period_ns
        release_ns = stamp_ns + int((args.lag_ms + jitter.uniform(0, args.jitter_ms)) * 1e6)
        wait_s = (release_ns - node.get_clock().now().nanoseconds) / 1e9
        if wait_s > 0:
            time.sleep(wait_s)  # pacing a real-time stream, not waiting for ROS
        stamp = Time(nanoseconds=stamp_ns).to_msg()
        click = index % click_every == 0
        chunk = AudioChunk(sample_rate=SAMPLE_RATE, channels=1, sample_format=AudioChunk.FORMAT_S16LE)
        chunk.header.stamp = stamp
        chunk.header.frame_id = "test_speaker"
        chunk.data = click_samples(chunk_samples, click).astype("<i2").tobytes()
        audio.publish(chunk)
        frame = draw_frame(face, index, args.fps, stamp_ns, click)
        if args.size != frame.shape[1]:
            frame = cv2.resize(frame, (args.size, args.size), interpolation=cv2.INTER_AREA)
        image = bgr_to_image(frame)
        image.header.stamp = stamp
        image.header.frame_id = "face"
        frames.publish(image)
        behind_ns = max(behind_ns, node.get_clock().now().nanoseconds - release_ns)
        released += 1
        if release_ns >= next_status_ns:
            status.publish(talk_status(node, args, released, TalkStatus.STATE_TALKING, "talking"))
            next_status_ns += 1_000_000_000
    status.publish(talk_status(node, args, released, TalkStatus.STATE_IDLE, "idle"))
    return behind_ns / 1e6


def talk_status(node, args, frames_published, state, state_name):
    msg = TalkStatus(state=state, state_name=state_name, engine="test-peer",
                     engine_reason="synthetic stream for display tests", precision="fp32",
                     architecture="none", face_detected=False)
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.fps = float(args.fps)
    msg.latency_ms_p50 = float(args.lag_ms + args.jitter_ms / 2)
    msg.latency_ms_p95 = float(args.lag_ms + args.jitter_ms * 0.95)
    msg.frames_published = frames_published
    return msg


if __name__ == "__main__":
    sys.exit(main())
