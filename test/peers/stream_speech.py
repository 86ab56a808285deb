"""Test peer (its own OS process): latches a face image, waits for the talking-face node to subscribe
to audio, then streams a speech file as AudioChunks of --chunk-ms at real time (or --speed times
faster, as a speech synthesiser may), as a microphone would. --skip-chunks A:B leaves chunks A..B-1 out
(a transport loss); --faces-hz alternates the face image and its mirror image on face_image meanwhile.
Prints the stamp of the first sample (ns) and the samples sent so the test can check against them."""
import argparse
import sys
import time

import cv2
import numpy as np
import rclpy
from rclpy.qos import QoSProfile

from lightlip_msgs.msg import AudioChunk
from lightlip_ros.audio import load_audio
from lightlip_ros.image_msgs import bgr_to_image
from lightlip_ros.pcm import float_to_s16
from lightlip_ros.ros_common import LATCHED
from sensor_msgs.msg import Image


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wav", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--chunk-ms", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--speed", type=float, default=1.0, help="times real time")
    parser.add_argument("--loops", type=int, default=1, help="play the speech this many times, back to back")
    parser.add_argument("--skip-chunks", default="", help="A:B: chunks A to B-1 are never published")
    parser.add_argument("--faces-hz", type=float, default=0.0, help="alternate two faces at this rate")
    parser.add_argument("--audio-depth", type=int, default=100, help="history depth of the audio publisher")
    args = parser.parse_args(rclpy.utilities.remove_ros_args(sys.argv)[1:])

    rclpy.init(args=sys.argv)  # --ros-args (e.g. a namespace) apply to this node
    node = rclpy.create_node("speech_streamer")
    face = node.create_publisher(Image, "face_image", LATCHED)
    audio = node.create_publisher(AudioChunk, "audio", QoSProfile(depth=args.audio_depth))
    image = cv2.imread(args.image)
    faces = [bgr_to_image(image), bgr_to_image(np.ascontiguousarray(image[:, ::-1]))]
    face.publish(faces[0])
    samples = np.tile(load_audio(args.wav)[: int(args.seconds * 16000)], args.loops)
    pcm = float_to_s16(samples)
    skip = range(*(int(v) for v in args.skip_chunks.split(":"))) if args.skip_chunks else range(0)

    deadline = time.monotonic() + args.timeout
    while audio.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    step = int(16000 * args.chunk_ms / 1000)
    start_ns = node.get_clock().now().nanoseconds
    print(f"first_sample_stamp_ns={start_ns}", flush=True)
    started = time.monotonic()
    period = args.chunk_ms / 1000 / args.speed
    sent = faces_sent = 0
    for index, offset in enumerate(range(0, pcm.size, step)):
        while time.monotonic() < started + index * period:
            rclpy.spin_once(node, timeout_sec=0.001)
        if args.faces_hz and time.monotonic() >= started + faces_sent / args.faces_hz:
            faces_sent += 1
            face.publish(faces[faces_sent % 2])
        if index in skip:
            continue
        chunk = AudioChunk(sample_rate=16000, channels=1, sample_format="S16LE")
        stamp = start_ns + offset * 10**9 // 16000
        chunk.header.stamp.sec, chunk.header.stamp.nanosec = divmod(stamp, 10**9)
        chunk.data = pcm[offset:offset + step].tobytes()
        audio.publish(chunk)
        sent += len(chunk.data) // 2
    print(f"sent_samples={sent} faces_sent={faces_sent}", flush=True)
    print("done", flush=True)
    # Stay until stopped so that reliable delivery of the last chunks completes.
    try:
        rclpy.spin(node)
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
