"""What every LightLip ROS process agrees on: the "latched" QoS and stamp <-> seconds conversions."""
from builtin_interfaces.msg import Time
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

# A face image or a status sent once reaches subscribers that start later (reliable + transient local).
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


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
