"""ament_python package lightlip_ros: the runtime library, the nodes and the offline training tools.

Builds the same way with colcon on a robot (apt-installed ROS 2) and with pip in a venv.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "lightlip_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*", "training", "training.*"]),
    package_data={PACKAGE: ["assets/*", "display/static/*"], "training.data.synth": ["astronaut.jpg"],
                  "training.train": ["configs/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        # The Fast DDS profile lives with the package's assets (the node finds it there when the user has
        # configured none); it is installed under config/ too, for launch files and users' scripts.
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + [f"{PACKAGE}/assets/fastdds_large_frames.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    python_requires=">=3.10",
    maintainer="LightLip maintainers",
    maintainer_email="maintainers@lightlip.dev",
    description="Real-time speech-driven talking faces for robots (ROS 2).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            f"talking_face_node = {PACKAGE}.talking_face_node:main",
            f"face_display_node = {PACKAGE}.face_display_node:main",
            f"lightlip-demo = {PACKAGE}.demo:main",
            f"lightlip-profile = {PACKAGE}.models.profile:main",
            "lightlip-data = training.data.cli:main",
            "lightlip-train = training.train.cli:main",
            "lightlip-quant = training.quant.cli:main",
            "lightlip-build-engine = training.deploy.engine_builder:main",
            "lightlip-bench = training.deploy.bench:main",
        ],
    },
)
