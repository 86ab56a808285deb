"""lightlip_msgs and lightlip_ros built with colcon as a robot builds them, then used from the install.

The venv plays the part of the robot's /opt/ros/<distro>: its prefix holds the ROS wheels' share/ and lib/
(CMAKE_PREFIX_PATH and AMENT_PREFIX_PATH point at it, as sourcing /opt/ros/<distro>/setup.sh would do).
A copy of the tracked sources is cloned into a workspace's src/, colcon builds it, and everything after
that runs in fresh shells that source the workspace's install/setup.sh. The venv also holds its own
bootstrap copy of both packages, so each check also asserts that what ran came from the colcon install.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from lightlip_msgs.msg import TalkStatus
from node_helpers import Watcher
from ros_helpers import Process, console_script

pytestmark = pytest.mark.ros

PACKAGES = ("lightlip_msgs", "lightlip_ros")
BUILD_TIMEOUT_S = 600


def clone_sources(workspace):
    """The tracked files of this checkout, as `git clone` would place them in <workspace>/src/lightlip."""
    source = workspace / "src" / "lightlip"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for relative in filter(None, tracked.decode().split("\0")):
        origin = REPO_ROOT / relative
        if origin.is_file():  # tracked but deleted in the working tree: not part of these sources
            (source / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, source / relative)
    return source


def robot_environment():
    """This process's environment with the venv as the ROS underlay, as /opt/ros/<distro>/setup.sh sets it."""
    env = dict(os.environ, CMAKE_PREFIX_PATH=sys.prefix, AMENT_PREFIX_PATH=sys.prefix,
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    for variable in ("PYTHONPATH", "COLCON_PREFIX_PATH"):  # nothing of another overlay leaks in
        env.pop(variable, None)
    return env


def colcon_build(workspace, *arguments, log_name):
    """Runs `colcon build` in the workspace; fails with colcon's output."""
    result = subprocess.run(
        [console_script("colcon"), "--log-base", str(workspace / "log" / log_name), "build",
         "--event-handlers", "console_direct-", *arguments],
        cwd=workspace, env=robot_environment(), capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, f"colcon build {' '.join(arguments)} failed:\n{result.stdout[-4000:]}\n" \
                                   f"{result.stderr[-4000:]}"


def sourced(install, *argv):
    """`argv` run by a fresh shell that has sourced the workspace's install/setup.sh (as a robot's shell)."""
    return ["bash", "-c", '. "$0/setup.sh" && exec "$@"', str(install), *map(str, argv)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A colcon workspace with this repository cloned into src/ and built (both packages)."""
    workspace = tmp_path_factory.mktemp("colcon_ws")
    source = clone_sources(workspace)
    # The repository root is the lightlip_ros package, and colcon (like rosdep) stops crawling at a
    # package: lightlip_msgs is named as a second base path, as docs/robot.md tells robot users to.
    colcon_build(workspace, "--base-paths", str(source), str(source / "lightlip_msgs"), log_name="build")
    return workspace


def test_interfaces_and_package_data_come_from_the_install(workspace):
    install = workspace / "install"
    probe = r"""
import json
from ament_index_python.packages import get_package_share_directory, get_packages_with_prefixes
from rclpy.serialization import deserialize_message, serialize_message

import lightlip_msgs
import lightlip_ros
from lightlip_msgs.msg import AudioChunk, TalkStatus
from lightlip_msgs.srv import SetFace

chunk = AudioChunk(sample_rate=16000, channels=1, sample_format=AudioChunk.FORMAT_S16LE, data=bytes(range(8)))
echo = deserialize_message(serialize_message(chunk), AudioChunk)
request = SetFace.Request(path="face.jpg", box_width=64)
libraries = sorted({line.split()[-1] for line in open("/proc/self/maps") if "lightlip_msgs" in line})
print(json.dumps({
    "lightlip_msgs": lightlip_msgs.__file__, "lightlip_ros": lightlip_ros.__file__,
    "prefixes": {name: get_packages_with_prefixes().get(name) for name in ("lightlip_msgs", "lightlip_ros")},
    "share": get_package_share_directory("lightlip_ros"),
    "echo": [echo.sample_rate, echo.sample_format, list(echo.data)],
    "constants": [TalkStatus.STATE_TALKING, request.box_width], "libraries": libraries}))
"""
    # Run from the workspace root, as a robot's shell would (`python -c` puts the current directory first).
    result = subprocess.run(sourced(install, sys.executable, "-c", probe), cwd=workspace, env=robot_environment(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])

    for package in PACKAGES:
        assert Path(found[package]).is_relative_to(install / package), f"{package} imported from {found[package]}"
        assert found["prefixes"][package] == str(install / package), found["prefixes"]
    assert found["echo"] == [16000, "S16LE", list(range(8))]
    assert found["constants"] == [TalkStatus.STATE_TALKING, 64]
    # The C type support behind the Python messages is the install's too (the venv has its own copy).
    assert found["libraries"], "no lightlip_msgs library loaded"
    outside = [library for library in found["libraries"] if not Path(library).is_relative_to(install)]
    assert not outside, f"lightlip_msgs libraries loaded from outside the install: {outside}"

    share = Path(found["share"])
    assert share == install / "lightlip_ros" / "share" / "lightlip_ros"
    for relative in ("package.xml", "launch/talk.launch.py", "config/talk.yaml"):
        assert (share / relative).read_bytes() == (REPO_ROOT / relative).read_bytes(), relative
    assert (install / "lightlip_msgs" / "share" / "lightlip_msgs" / "msg" / "AudioChunk.msg").is_file()


def test_installed_executables_are_where_ros2_run_looks(workspace):
    """`ros2 run` and launch_ros's Node look in lib/<package>/ (setup.cfg's install_scripts)."""
    scripts = workspace / "install" / "lightlip_ros" / "lib" / "lightlip_ros"
    for name in ("talking_face_node", "face_display_node", "lightlip-demo", "lightlip-build-engine"):
        assert os.access(scripts / name, os.X_OK), f"{scripts / name} missing or not executable"
    assert not (workspace / "install" / "lightlip_ros" / "bin").exists(), "scripts also installed in bin/"


def test_installed_node_runs_and_stops_cleanly(workspace, ros_context, node_env, student_checkpoint, tmp_path):
    install = workspace / "install"
    share = install / "lightlip_ros" / "share" / "lightlip_ros"
    node_script = install / "lightlip_ros" / "lib" / "lightlip_ros" / "talking_face_node"
    command = [node_script, "--ros-args", "-r", "__node:=built_face", "--params-file", share / "config" / "talk.yaml",
               "-p", f"model_path:={student_checkpoint}", "-p", "engine:=onnxruntime", "-p", "idle_rate:=0.0"]
    env = dict(robot_environment(), **{key: node_env[key] for key in
                                       ("ROS_DOMAIN_ID", "ROS_AUTOMATIC_DISCOVERY_RANGE", "PYTHONUNBUFFERED",
                                        "RCUTILS_LOGGING_BUFFERED_STREAM", "XDG_CACHE_HOME")})
    node = Process(sourced(install, *command), env, tmp_path / "node.log")
    try:
        watcher = Watcher(ros_context)
        watcher.wait_for_state(TalkStatus.STATE_WAITING_FOR_FACE, process=node)
        status = watcher.status
        assert status.engine == "onnxruntime", status.engine_reason
        assert status.architecture == "student", status.model
        with open(f"/proc/{node.popen.pid}/maps") as maps:
            libraries = {line.split()[-1] for line in maps if "lightlip_msgs" in line}
        assert libraries and all(Path(library).is_relative_to(install) for library in libraries), libraries
    finally:
        exit_code = node.stop()
    assert exit_code == 0, f"node exited with {exit_code} on SIGINT:\n{node.output()[-3000:]}"


def test_symlink_install_of_lightlip_ros(workspace, tmp_path):
    """`colcon build --symlink-install` (the usual developer build): setup.cfg's [develop] script_dir."""
    source = workspace / "src" / "lightlip"
    colcon_build(tmp_path, "--symlink-install", "--base-paths", str(source), "--build-base", str(tmp_path / "build"),
                 "--install-base", str(tmp_path / "install"), log_name="symlink")
    prefix = tmp_path / "install" / "lightlip_ros"
    assert os.access(prefix / "lib" / "lightlip_ros" / "talking_face_node", os.X_OK)
    launch_file = prefix / "share" / "lightlip_ros" / "launch" / "talk.launch.py"
    assert launch_file.is_symlink() and launch_file.resolve() == (source / "launch" / "talk.launch.py").resolve()
    result = subprocess.run(
        sourced(tmp_path / "install", sys.executable, "-c", "import lightlip_ros; print(lightlip_ros.__file__)"),
        cwd=tmp_path, env=robot_environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    imported = Path(result.stdout.strip().splitlines()[-1]).resolve()
    assert imported == (source / "lightlip_ros" / "__init__.py").resolve(), imported
