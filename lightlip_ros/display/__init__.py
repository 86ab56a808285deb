"""The web display: an aiohttp server that streams face frames (JPEG) and speech (PCM) to browsers,
whose page presents both at (stamp + presentation delay) on its own clocks and measures the sync.

The server knows nothing of ROS: face_display_node feeds it with stamps in seconds on the stamp
timeline and answers its clock requests with the ROS clock.
"""
from .server import (KIND_AUDIO, KIND_FRAME, PACKET_HEADER, STATIC_DIR, DisplayServer,
                     ServerStartError)

__all__ = ["DisplayServer", "ServerStartError", "PACKET_HEADER", "KIND_FRAME", "KIND_AUDIO",
           "STATIC_DIR"]
