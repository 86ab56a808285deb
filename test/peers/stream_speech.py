"""Test peer (its own OS process): latches a face image, waits for the talking-face node to subscribe
to audio, then streams a speech file as AudioChunks of --chunk-ms at real time, as a microphone would.
Prints the stamp of the first sample (ns) so the test can check frame stamps against it."""
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
from lightlip_ros.ros_common import LATCHED
from sensor_msgs.msg import Image



def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wav", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--chunk-ms", type=float, default=20.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(rclpy.utilities.remove_ros_args(sys.argv)[1:])

    rclpy.init(args=sys.argv)  # --ros-args (e.g. a namespace) apply to this node
    node = rclpy.create_node("speech_streamer")
    face = node.create_publisher(Image, "face_image", LATCHED)
    audio = node.create_publisher(AudioChunk, "audio", QoSProfile(depth=100))
    face.publish(bgr_to_image(cv2.imread(args.image)))
    samples = load_audio(args.wav)[: int(args.seconds * 16000)]
    pcm = np.clip(samples * 32767, -32768, 32767).astype("<i2")

    deadline = time.monotonic() + args.timeout
    while audio.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    step = int(16000 * args.chunk_ms / 1000)
    start_ns = node.get_clock().now().nanoseconds
    print(f"first_sample_stamp_ns={start_ns}", flush=True)
    started = time.monotonic()
    for index, offset in enumerate(range(0, pcm.size, step)):
        while time.monotonic() < started + index * args.chunk_ms / 1000:
            rclpy.spin_once(node, timeout_sec=0.001)
        chunk = AudioChunk(sample_rate=16000, channels=1, sample_format="S16LE")
        stamp = start_ns + offset * 10**9 // 16000
        chunk.header.stamp.sec, chunk.header.stamp.nanosec = divmod(stamp, 10**9)
        chunk.data = pcm[offset:offset + step].tobytes()
        audio.publish(chunk)
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
