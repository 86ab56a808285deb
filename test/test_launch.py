"""What talk.launch.py does (namespace, remaps, params file), done with the console script as a
subprocess (launch and launch_pytest are not on PyPI; test_talk_launch.py runs the launch file itself
where they exist)."""
import pytest
import yaml
from rcl_interfaces.srv import GetParameters

from lightlip_msgs.msg import TalkStatus
from lightlip_ros.ros_common import LATCHED
from node_helpers import Watcher, start_node
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros


def test_namespace_remaps_and_params_file(ros_context, node_env, student_checkpoint, tmp_path):
    import cv2
    from conftest import ASSETS
    from lightlip_ros.image_msgs import bgr_to_image

    params = tmp_path / "talk.yaml"
    params.write_text(yaml.safe_dump({"/**": {"ros__parameters": {
        "model_path": str(student_checkpoint), "idle_rate": 4.0, "gap_timeout": 0.5, "blend_width": 8}}}))
    with start_node(node_env, tmp_path / "node.log", "-r", "__ns:=/robot", "-r", "__node:=face",
                    "-r", "audio:=/mic/audio", "-r", "face_image:=/camera/face", "-r", "face_frames:=/display/image",
                    "--params-file", str(params)) as node:
        watcher = Watcher(ros_context, prefix="/robot", frames_topic="/display/image")
        watcher.wait_for_state(TalkStatus.STATE_WAITING_FOR_FACE, process=node)
        graph = watcher.node
        watcher.spin_until(lambda: ("face", "/robot") in graph.get_node_names_and_namespaces(), 30,
                           "node /robot/face in the graph", node)
        # Endpoints are discovered one by one: wait until the graph shows all of them.
        expected = {
            "publishers": (graph.get_publisher_names_and_types_by_node,
                           {"/display/image", "/robot/audio_out", "/robot/talk_status", "/diagnostics"}),
            "subscriptions": (graph.get_subscriber_names_and_types_by_node, {"/mic/audio", "/camera/face"}),
            "services": (graph.get_service_names_and_types_by_node, {"/robot/set_face"}),
        }
        for kind, (query, names) in expected.items():
            watcher.spin_until(lambda: names <= {name for name, _ in query("face", "/robot")}, 30,
                               f"{kind} {sorted(names)} of /robot/face", node)

        client = graph.create_client(GetParameters, "/robot/face/get_parameters")
        assert client.wait_for_service(timeout_sec=30)
        future = client.call_async(GetParameters.Request(names=["idle_rate", "gap_timeout", "blend_width"]))
        watcher.spin_until(future.done, 30, "get_parameters", node)
        values = [v.double_value or v.integer_value for v in future.result().values]
        assert values == [4.0, 0.5, 8]

        face = graph.create_publisher(Image, "/camera/face", LATCHED)
        face.publish(bgr_to_image(cv2.imread(str(ASSETS / "face.jpg"))))
        # Idle frames arrive on the remapped output topic, at most at the params file's 4 Hz (the
        # default would be 5 Hz: stamps 0.2 s apart).
        watcher.spin_until(lambda: len(watcher.frames) >= 3, 30, "idle frames on /display/image", node)
        stamps = [stamp for stamp, _ in watcher.frames[-3:]]
        assert min(b - a for a, b in zip(stamps, stamps[1:])) >= 0.249e9, stamps
