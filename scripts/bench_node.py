#!/usr/bin/env python3
"""The talking-face node under real conditions: a real node process, real DDS, the bundled student.

Scenarios (each a fresh node started as `ros2 run` starts it, no Fast DDS configuration given):
  face-512     a 512x512 face, speech at real time in 20 ms chunks, a best-effort viewer: frames the viewer
               got, node latency p50/p95 (talk_status), node CPU (cores, from /proc);
  face-4k      the same with the face in a 3840x2160 picture: frame size and bytes, latency, peak RSS;
  compressed   face-512 plus a subscriber to face_frames/compressed: JPEG bytes per frame, node CPU;
  10x          30 s of speech at 10x real time while two faces alternate at 30 Hz on face_image:
               samples sent / received / lost before the node / dropped, node CPU.

    .venv/bin/python scripts/bench_node.py [--seconds 10] [--scenarios face-512,face-4k,compressed,10x]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "lightlip_ros" / "assets"
SCENARIOS = ("face-512", "face-4k", "compressed", "10x")
CHUNK = 320  # 20 ms at 16 kHz


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="speech per real-time scenario (default: 10)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, of {', '.join(SCENARIOS)}")
    parser.add_argument("--domain", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "77")),
                        help="ROS_DOMAIN_ID of the run (default: 77)")
    args = parser.parse_args(argv)
    args.scenarios = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown or not 0.5 <= args.seconds <= 300:
        parser.exit(1, f"bench_node: error: unknown scenario {', '.join(unknown)}\n" if unknown else
                    "bench_node: error: --seconds must be within 0.5-300\n")
    return args


class ProcessCpu:
    """CPU seconds and peak resident memory of a process, read from /proc."""

    def __init__(self, pid):
        self.pid = pid
        self.ticks = os.sysconf("SC_CLK_TCK")

    def cpu_s(self):
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.ticks

    def peak_rss_mb(self):
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")


class Driver:
    """This process's side: publishes speech and faces, watches frames, status and compressed frames."""

    def __init__(self):
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

        from lightlip_msgs.msg import AudioChunk, TalkStatus
        from lightlip_ros.ros_common import LATCHED
        from sensor_msgs.msg import CompressedImage, Image

        self.rclpy = rclpy
        self.node = rclpy.create_node("bench_driver")
        self.faces = self.node.create_publisher(Image, "face_image", LATCHED)
        self.audio = self.node.create_publisher(AudioChunk, "audio", QoSProfile(depth=2000))
        self.frames, self.compressed_bytes, self.statuses = {}, [], []
        self.node.create_subscription(Image, "face_frames", self._on_frame, qos_profile_sensor_data)
        self.node.create_subscription(TalkStatus, "talk_status", self.statuses.append, QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self._compressed_type = CompressedImage
        self._chunk_type = AudioChunk

    def _on_frame(self, msg):
        self.frames[msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = (msg.width, msg.height, len(msg.data))

    def watch_compressed(self):
        from rclpy.qos import qos_profile_sensor_data

        self.node.create_subscription(self._compressed_type, "face_frames/compressed",
                                      lambda msg: self.compressed_bytes.append(len(msg.data)), qos_profile_sensor_data)

    def spin_until(self, predicate, timeout_s, what):
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                status = self.status()
                counts = "" if status is None else (
                    f" (state {status.state_name}, received {status.audio_samples_received}, lost "
                    f"{status.audio_samples_lost}, buffered {status.audio_samples_buffered}, dropped "
                    f"{status.audio_samples_dropped}, rejected {status.inputs_rejected}, "
                    f"last error {status.last_error!r})")
                raise SystemExit(f"bench_node: error: timed out waiting for {what}{counts}")
            self.rclpy.spin_once(self.node, timeout_sec=0.01)

    def status(self):
        return self.statuses[-1] if self.statuses else None

    def stream(self, pcm, speed=1.0, faces=None, faces_hz=0.0):
        """Publishes pcm (int16) in 20 ms chunks at `speed` x real time; returns the first sample's stamp."""
        start_ns = self.node.get_clock().now().nanoseconds
        started, period, faces_sent = time.monotonic(), CHUNK / 16000 / speed, 0
        for index, offset in enumerate(range(0, pcm.size, CHUNK)):
            while time.monotonic() < started + index * period:
                self.rclpy.spin_once(self.node, timeout_sec=0.0005)
            if faces_hz and time.monotonic() >= started + faces_sent / faces_hz:
                faces_sent += 1
                self.faces.publish(faces[faces_sent % len(faces)])
            chunk = self._chunk_type(sample_rate=16000, channels=1, sample_format="S16LE")
            chunk.header.stamp.sec, chunk.header.stamp.nanosec = divmod(start_ns + offset * 10**9 // 16000, 10**9)
            chunk.data = pcm[offset:offset + CHUNK].tobytes()
            self.audio.publish(chunk)
        return start_ns


def run(driver, env, face_image, pcm, scenario, workdir):
    from lightlip_msgs.msg import TalkStatus
    from lightlip_ros.image_msgs import bgr_to_image

    driver.frames.clear()
    driver.compressed_bytes.clear()
    driver.statuses.clear()
    log = open(workdir / f"node-{scenario}.log", "wb")
    node = subprocess.Popen([str(Path(sys.executable).parent / "talking_face_node"), "--ros-args",
                             "-p", "idle_rate:=0.0"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        cpu = ProcessCpu(node.pid)
        driver.spin_until(lambda: driver.status() is not None
                          and driver.status().state == TalkStatus.STATE_WAITING_FOR_FACE, 120, "the node")
        faces = [bgr_to_image(face_image), bgr_to_image(np.ascontiguousarray(face_image[:, ::-1]))]
        driver.faces.publish(faces[0])
        size = f"in a {face_image.shape[1]}x{face_image.shape[0]} image"  # not the previous run's latched face
        driver.spin_until(lambda: driver.status().state == TalkStatus.STATE_IDLE and size in driver.status().face_note,
                          60, "the face")
        driver.spin_until(lambda: driver.audio.get_subscription_count() > 0, 30, "the audio subscription")
        if scenario == "compressed":
            driver.watch_compressed()
            time.sleep(2.0)  # discovery of the new subscription
        cpu_before, wall_before = cpu.cpu_s(), time.monotonic()
        speed, faces_hz = (10.0, 30.0) if scenario == "10x" else (1.0, 0.0)
        start_ns = driver.stream(pcm, speed, faces, faces_hz)
        total = pcm.size
        driver.spin_until(lambda: driver.status().state == TalkStatus.STATE_IDLE
                          and driver.status().audio_samples_buffered == 0
                          and driver.status().audio_samples_received + driver.status().audio_samples_lost >= total,
                          120, "the speech rendered")
        wall = time.monotonic() - wall_before
        used = cpu.cpu_s() - cpu_before
        peak = cpu.peak_rss_mb()
        status = driver.status()
        talking = {stamp: frame for stamp, frame in driver.frames.items()
                   if start_ns <= stamp < start_ns + int(total / 16000 * 1e9)}
        expected = int(np.ceil(total / CHUNK / 2))
        line = [f"{scenario:<10}"]
        if scenario == "10x":
            line += [f"sent {total}", f"received {status.audio_samples_received}",
                     f"lost before the node {status.audio_samples_lost}", f"dropped {status.audio_samples_dropped}",
                     f"frames dropped {status.frames_dropped}"]
        else:
            size = next(iter(talking.values()))[:2] if talking else (0, 0)
            mb = np.mean([f[2] for f in talking.values()]) / 1e6 if talking else 0.0
            line += [f"viewer {len(talking)}/{expected} frames", f"{size[0]}x{size[1]} ({mb:.2f} MB)",
                     f"latency p50 {status.latency_ms_p50:.1f} p95 {status.latency_ms_p95:.1f} ms"]
        if scenario == "compressed":
            sizes = driver.compressed_bytes
            line.append(f"JPEG {np.mean(sizes) / 1e3:.1f} kB/frame over {len(sizes)}")
        line += [f"node CPU {used / wall:.2f} cores", f"peak RSS {peak:.0f} MB"]
        print(" | ".join(line), flush=True)
    finally:
        node.send_signal(subprocess.signal.SIGINT)
        try:
            node.wait(15)
        except subprocess.TimeoutExpired:
            node.kill()
        log.close()


def main(argv=None):
    args = parse_args(argv)
    import cv2
    import rclpy

    from lightlip_ros.audio import load_audio
    from lightlip_ros.pcm import float_to_s16

    workdir = Path(tempfile.mkdtemp(prefix="bench_node_"))
    env = {key: value for key, value in os.environ.items()
           if key not in ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")}
    env.update(ROS_DOMAIN_ID=str(args.domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST",
               ROS_LOG_DIR=str(workdir / "ros_log"))
    os.environ.update(ROS_DOMAIN_ID=str(args.domain), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    speech = load_audio(ASSETS / "speech.wav")
    face = cv2.imread(str(ASSETS / "face.jpg"))
    big = np.zeros((2160, 3840, 3), np.uint8)  # a 4K camera picture with the face in its middle
    big[:, 840:3000] = cv2.resize(face, (2160, 2160), interpolation=cv2.INTER_CUBIC)

    def to_pcm(seconds):
        return float_to_s16(np.tile(speech, int(np.ceil(seconds * 16000 / speech.size)))[:int(seconds * 16000)])

    rclpy.init()
    try:
        driver = Driver()
        load = os.getloadavg()[0]
        print(f"bench_node: load average {load:.2f} at start, {os.cpu_count()} CPUs; logs in {workdir}", flush=True)
        for scenario in args.scenarios:
            image = big if scenario == "face-4k" else face
            pcm = to_pcm(30.0 if scenario == "10x" else args.seconds)
            run(driver, env, image, pcm, scenario, workdir)
        print(f"bench_node: load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
