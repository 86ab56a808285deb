"""What every LightLip ROS process agrees on: the "latched" QoS, stamp <-> seconds conversions, the DDS
transport for full-size frames and a quiet end on Ctrl-C."""
import os
from pathlib import Path

import rclpy
from builtin_interfaces.msg import Time
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from lightlip_ros import ASSETS

# A face image or a status sent once reaches subscribers that start later (reliable + transient local).
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)

LARGE_FRAMES_PROFILE = ASSETS / "fastdds_large_frames.xml"
# How a user configures Fast DDS: profile files named by these variables, or found in the working
# directory under these names, or the builtin transports chosen by name.
FASTDDS_PROFILE_VARIABLES = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE",
                             "FASTDDS_BUILTIN_TRANSPORTS")
FASTDDS_PROFILE_FILES = ("DEFAULT_FASTDDS_PROFILES.xml", "DEFAULT_FASTRTPS_PROFILES.xml")


def spin_until_shutdown(node) -> None:
    """Runs node's callbacks until Ctrl-C or a shutdown of its context from outside, both of which end it quietly."""
    try:
        rclpy.spin(node, SingleThreadedExecutor(context=node.context))
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:
        # Ctrl-C shuts the context down from rclpy's signal handler, which may land while the executor builds
        # its guard condition or wait set (an rclpy race, ros2/rclpy#398): an error then is not a real one.
        if node.context.ok():
            raise


def configure_fastdds(environ=os.environ, cwd=None) -> str:
    """Gives this process's Fast DDS participant LARGE_FRAMES_PROFILE (shared memory that holds a whole
    full-size frame) when the user has configured neither Fast DDS nor another RMW; call before
    rclpy.init. Fast DDS's default 512 KiB segment sends a 512x512 frame as fragmented UDP, and a
    best-effort viewer then loses about half of them. Returns a line to log ("" when it left things).
    """
    rmw = environ.get("RMW_IMPLEMENTATION", "")
    if rmw not in ("", "rmw_fastrtps_cpp") or any(name in environ for name in FASTDDS_PROFILE_VARIABLES):
        return ""
    folder = Path(cwd or os.getcwd())
    if any((folder / name).exists() for name in FASTDDS_PROFILE_FILES):
        return ""
    environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(LARGE_FRAMES_PROFILE)
    return (f"Fast DDS is not configured: using {LARGE_FRAMES_PROFILE} (a shared-memory segment that holds "
            "full-size frames); set FASTDDS_DEFAULT_PROFILES_FILE to use your own")


def stamp_seconds(stamp) -> float:
    """Seconds since the clock's epoch: good to ~0.24 us for wall-clock stamps (float64 at ~1.8e9 s)."""
    return stamp.sec + stamp.nanosec * 1e-9


class StampClock:
    """Stamps <-> float seconds counted from a whole second near `now_ns`, exact to the nanosecond.

    Wall-clock seconds in a float64 resolve only ~0.24 us, so a stamp sent through them can come back a
    fraction of a microsecond early: a frame stamped with its first audio sample's time would then show a
    time before that sample. Seconds from a nearby epoch keep every nanosecond for months.
    """

    def __init__(self, now_ns: int):
        self.epoch_ns = now_ns - now_ns % 10**9

    def seconds_from_ns(self, nanoseconds: int) -> float:
        return (nanoseconds - self.epoch_ns) * 1e-9

    def seconds(self, stamp) -> float:
        return self.seconds_from_ns(stamp.sec * 10**9 + stamp.nanosec)

    def stamp(self, seconds: float) -> Time:
        nanoseconds = self.epoch_ns + round(seconds * 1e9)
        return Time(sec=nanoseconds // 10**9, nanosec=nanoseconds % 10**9)
