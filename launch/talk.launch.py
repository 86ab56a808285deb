"""Starts the talking-face node (and optionally the web display) with remappable topics.

    ros2 launch lightlip_ros talk.launch.py namespace:=robot audio_topic:=/mic/audio \
        face_image_topic:=/face/image face_frames_topic:=/display/image engine:=onnxruntime display:=web
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    config = os.path.join(get_package_share_directory("lightlip_ros"), "config")
    namespace = LaunchConfiguration("namespace")
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the nodes"),
        DeclareLaunchArgument("params_file", default_value=os.path.join(config, "talk.yaml"),
                              description="YAML parameters file (see config/talk.yaml)"),
        DeclareLaunchArgument("model", default_value="",
                              description="Generator checkpoint, .onnx or .engine; empty: the bundled student"),
        DeclareLaunchArgument("engine", default_value="auto",
                              description="auto | tensorrt | onnxruntime | torch"),
        DeclareLaunchArgument("audio_topic", default_value="audio",
                              description="lightlip_msgs/AudioChunk input"),
        DeclareLaunchArgument("face_image_topic", default_value="face_image",
                              description="sensor_msgs/Image of the face to animate"),
        DeclareLaunchArgument("face_frames_topic", default_value="face_frames",
                              description="sensor_msgs/Image output for the display"),
        DeclareLaunchArgument("display", default_value="none", choices=["web", "none"],
                              description="web: also serve the browser display (face_display_node)"),
        DeclareLaunchArgument("display_address", default_value="127.0.0.1",
                              description="Address of the web display; 0.0.0.0 serves a kiosk on another machine"),
        DeclareLaunchArgument("display_port", default_value="8765", description="0 picks a free port (logged)"),
        DeclareLaunchArgument("display_delay_ms", default_value="400",
                              description="The display shows frames and plays sound at stamp + this"),
        DeclareLaunchArgument("fastdds_profile", default_value=os.path.join(config, "fastdds_large_frames.xml"),
                              description="Fast DDS profile of the talking-face node; empty: Fast DDS's defaults"),
    ]
    talking_face = Node(
        package="lightlip_ros",
        executable="talking_face_node",
        name="talking_face",
        namespace=namespace,
        output="screen",
        emulate_tty=True,
        additional_env={"FASTDDS_DEFAULT_PROFILES_FILE": LaunchConfiguration("fastdds_profile")},
        parameters=[LaunchConfiguration("params_file"),
                    {"model_path": LaunchConfiguration("model"),
                     "engine": LaunchConfiguration("engine")}],
        remappings=[("audio", LaunchConfiguration("audio_topic")),
                    ("face_image", LaunchConfiguration("face_image_topic")),
                    ("face_frames", LaunchConfiguration("face_frames_topic"))],
    )
    display = Node(
        package="lightlip_ros",
        executable="face_display_node",
        name="face_display",
        namespace=namespace,
        output="screen",
        emulate_tty=True,
        parameters=[LaunchConfiguration("params_file"),
                    {"address": LaunchConfiguration("display_address"),
                     "port": ParameterValue(LaunchConfiguration("display_port"), value_type=int),
                     "presentation_delay_ms": ParameterValue(LaunchConfiguration("display_delay_ms"),
                                                             value_type=int)}],
        remappings=[("face_frames", LaunchConfiguration("face_frames_topic"))],
        # PythonExpression, not EqualsSubstitution: Humble's launch has no EqualsSubstitution.
        condition=IfCondition(PythonExpression(["'", LaunchConfiguration("display"), "' == 'web'"])),
    )
    return LaunchDescription(arguments + [talking_face, display])
