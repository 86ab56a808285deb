"""Test peer (its own OS process): publishes a speech file as one AudioChunk and a face photo as a
sensor_msgs/Image, latched (reliable + transient local), then stays up until interrupted."""
import argparse

import cv2
import rclpy
import soundfile
from rclpy.executors import ExternalShutdownException

from lightlip_msgs.msg import AudioChunk
from lightlip_ros.image_msgs import bgr_to_image
from lightlip_ros.ros_common import LATCHED
from sensor_msgs.msg import Image


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--wav", required=True)
    parser.add_argument("--image", required=True)
    args = parser.parse_args()

    rclpy.init()
    node = rclpy.create_node("speech_and_face_publisher")
    samples, sample_rate = soundfile.read(args.wav, dtype="int16", always_2d=True)
    chunk = AudioChunk()
    chunk.header.stamp = node.get_clock().now().to_msg()
    chunk.header.frame_id = "test_speaker"
    chunk.sample_rate = sample_rate
    chunk.channels = samples.shape[1]
    chunk.sample_format = AudioChunk.FORMAT_S16LE
    chunk.data = samples.astype("<i2").tobytes()
    image = bgr_to_image(cv2.imread(args.image))
    image.header.frame_id = "test_camera"

    node.create_publisher(AudioChunk, "audio", LATCHED).publish(chunk)
    node.create_publisher(Image, "face_image", LATCHED).publish(image)
    node.get_logger().info("published")
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
