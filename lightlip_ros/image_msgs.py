"""numpy <-> sensor_msgs/Image for the encodings LightLip accepts, and bgr8 <-> JPEG CompressedImage.

cv_bridge is not available everywhere LightLip runs (no ROS 2 cv_bridge on PyPI), and these few lines
are all the node needs, with the validation a robot's odd camera drivers make necessary.
"""
import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

from .errors import LightLipError

# compressed_image_transport's format field: "ORIG_PIXFMT; CODEC compressed COMPRESSED_PIXFMT".
JPEG_FORMAT = "bgr8; jpeg compressed bgr8"

# encoding -> (channels, conversion to BGR). Only 8-bit encodings: the model works on 8-bit colour.
_ENCODINGS = {
    "bgr8": 3,
    "rgb8": 3,
    "bgra8": 4,
    "rgba8": 4,
    "mono8": 1,
}
SUPPORTED_ENCODINGS = tuple(_ENCODINGS)


class ImageFormatError(LightLipError, ValueError):
    """An Image message whose fields disagree or whose encoding is not supported."""


def image_to_bgr(msg: Image) -> np.ndarray:
    """Returns the image as a contiguous (height, width, 3) uint8 BGR array.

    Raises ImageFormatError with one readable line when encoding, step, size and data disagree.
    """
    channels = _ENCODINGS.get(msg.encoding)
    if channels is None:
        raise ImageFormatError(
            f"unsupported image encoding {msg.encoding!r} (supported: {', '.join(SUPPORTED_ENCODINGS)})")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageFormatError(f"empty image: {width}x{height}")
    if step < width * channels:
        raise ImageFormatError(
            f"image step {step} is smaller than width x channels = {width * channels} for {msg.encoding}")
    if len(msg.data) != step * height:
        raise ImageFormatError(
            f"image data has {len(msg.data)} bytes, expected step x height = {step * height}")
    rows = np.frombuffer(bytes(msg.data), dtype=np.uint8).reshape(height, step)
    pixels = rows[:, : width * channels].reshape(height, width, channels)
    if msg.encoding == "bgr8":
        return np.ascontiguousarray(pixels)
    if msg.encoding == "rgb8":
        return np.ascontiguousarray(pixels[:, :, ::-1])
    if msg.encoding == "bgra8":
        return np.ascontiguousarray(pixels[:, :, :3])
    if msg.encoding == "rgba8":
        return np.ascontiguousarray(pixels[:, :, 2::-1])
    return np.ascontiguousarray(np.repeat(pixels, 3, axis=2))  # mono8


def bgr_to_image(bgr: np.ndarray, header=None) -> Image:
    """Wraps a (height, width, 3) uint8 BGR array in a bgr8 Image (header copied when given)."""
    if bgr.dtype != np.uint8 or bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"expected a (H, W, 3) uint8 BGR array, got {bgr.dtype} {bgr.shape}")
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(bgr.shape[0]), int(bgr.shape[1])
    msg.encoding = "bgr8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(bgr).tobytes()
    return msg


def bgr_to_compressed(bgr: np.ndarray, header=None, quality: int = 80) -> CompressedImage:
    """A JPEG CompressedImage of a BGR array, in compressed_image_transport's format convention."""
    ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a {bgr.dtype} {bgr.shape} array")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = JPEG_FORMAT
    msg.data = data.tobytes()
    return msg


def compressed_to_bgr(msg: CompressedImage) -> np.ndarray:
    """Decodes a JPEG or PNG CompressedImage to a (height, width, 3) uint8 BGR array.

    Raises ImageFormatError for data OpenCV cannot decode.
    """
    image = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ImageFormatError(f"compressed image ({msg.format or 'no format'}, {len(msg.data)} bytes) "
                               "cannot be decoded")
    return image
