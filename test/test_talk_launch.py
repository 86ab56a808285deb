"""talk.launch.py itself, through launch_pytest: runs on a robot or any machine with an apt-installed
ROS 2 (launch, launch_ros and launch_pytest are not published on PyPI, so the venv cannot have them)."""
import pytest

launch_pytest = pytest.importorskip(
    "launch_pytest", reason="launch_pytest is not on PyPI; it comes with an apt-installed ROS 2 (e.g. on the robot)")

import os  # noqa: E402

import rclpy  # noqa: E402
from ament_index_python.packages import get_package_share_directory  # noqa: E402
from launch import LaunchDescription  # noqa: E402
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402

from lightlip_msgs.msg import TalkStatus  # noqa: E402
from lightlip_ros.ros_common import LATCHED  # noqa: E402

pytestmark = pytest.mark.ros


@launch_pytest.fixture
def talk_launch():
    launch_file = os.path.join(get_package_share_directory("lightlip_ros"), "launch", "talk.launch.py")
    return LaunchDescription([
        IncludeLaunchDescription(PythonLaunchDescriptionSource(launch_file), launch_arguments={
            "namespace": "robot", "audio_topic": "/mic/audio", "face_image_topic": "/camera/face",
            "face_frames_topic": "/display/image", "engine": "onnxruntime"}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=talk_launch)
def test_launch_file_starts_the_node_with_its_remaps():
    rclpy.init()
    try:
        node = rclpy.create_node("launch_test_probe")
        statuses = []
        node.create_subscription(TalkStatus, "/robot/talk_status", statuses.append, LATCHED)
        for _ in range(600):
            if statuses:
                break
            rclpy.spin_once(node, timeout_sec=0.1)
        assert statuses, "no talk_status from /robot/talking_face within 60 s"
        assert statuses[-1].state in (TalkStatus.STATE_WAITING_FOR_FACE, TalkStatus.STATE_IDLE)
        subscriptions = dict(node.get_subscriber_names_and_types_by_node("talking_face", "/robot"))
        assert {"/mic/audio", "/camera/face"} <= set(subscriptions), subscriptions
        publishers = dict(node.get_publisher_names_and_types_by_node("talking_face", "/robot"))
        assert "/display/image" in publishers, publishers
    finally:
        rclpy.shutdown()
