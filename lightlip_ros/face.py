"""The face LightLip animates: detection, the Wav2Lip crop, the cached model input and feathered paste-back.

One face image is prepared once (`FaceCache.set_face`) and reused for every frame: the crop box, the
(6, 96, 96) generator input and the blend mask never change while the face stays the same, so a frame
costs only the generator and the paste.
"""
import collections
import dataclasses
import hashlib
import threading
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

from . import ASSETS
from .errors import LightLipError

CROP_SIZE = 96  # the generator's face resolution (Wav2Lip and the student)
# The face the demo and the tools use by default: Grace Hopper (US Navy photo, public domain, from
# matplotlib's sample data), a frontal face with a resting, closed mouth, and not a training identity.
BUNDLED_FACE = ASSETS / "face.jpg"

# Haar cascades tried in order, from OpenCV's own data files (offline, shipped with opencv-python<5).
# On the 25 development portraits and the bundled face: alt2 finds 25/26 faces with no false positive;
# "default" finds all 26 but adds false positives (an extra, sometimes larger box on 3 images), so it
# only runs when alt2 finds nothing. The largest box wins: a robot's face image shows one main face.
FRONTAL_CASCADES = ("haarcascade_frontalface_alt2.xml", "haarcascade_frontalface_default.xml")
# Detection runs on a copy whose longer side is at most this many pixels: Haar cost grows with image
# area, and a face large enough to animate is still far above the cascade's 20-24 px minimum there.
DETECTION_MAX_SIDE = 640
RECENT_FACES = 4  # prepared faces kept by FaceCache: a robot switching between a few faces re-detects none


class FaceImageError(LightLipError, ValueError):
    """An image that cannot be a face image at all (wrong type, shape or size); one readable line."""


class Box(NamedTuple):
    """A face box in image pixels: left, top, width, height."""
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class FaceConfig:
    """How faces are found, cropped and blended back.

    pads: (top, bottom, left, right) pixels added to the face box before cropping; (0, 10, 0, 0) is the
        official Wav2Lip inference setting (it lets the crop reach below the chin).
    blend_width_px: width of the soft transition between the generated lower face and the original
        image, in pixels of the original image; 0 pastes a hard rectangle (Wav2Lip's look).
    mask_top: where, as a fraction of the crop height, the transition into the generated face is
        centred. The generator redraws the lower half (its input has the lower half masked), so 0.5.
    min_face_fraction: the smallest face searched for, as a fraction of the image's shorter side.
    max_side: a face image whose longer side exceeds this many pixels is scaled down to it once, when it
        is set, so every frame is that size (a 4K camera picture would make 25 MB frames and cost a 25 MB
        copy per frame); 0 keeps every image's own size.
    """
    pads: Tuple[int, int, int, int] = (0, 10, 0, 0)
    blend_width_px: int = 16
    mask_top: float = 0.5
    min_face_fraction: float = 0.1
    max_side: int = 1280

    def __post_init__(self):
        if len(self.pads) != 4 or any(int(p) < 0 for p in self.pads):
            raise ValueError(f"pads must be four non-negative pixel counts (top, bottom, left, right), got {self.pads}")
        if self.blend_width_px < 0:
            raise ValueError(f"blend_width_px must be >= 0, got {self.blend_width_px}")
        if not 0.0 <= self.mask_top < 1.0:
            raise ValueError(f"mask_top must be in [0, 1), got {self.mask_top}")
        if not 0.0 < self.min_face_fraction <= 1.0:
            raise ValueError(f"min_face_fraction must be in (0, 1], got {self.min_face_fraction}")
        if self.max_side != 0 and self.max_side < CROP_SIZE:
            raise ValueError(f"max_side must be 0 (keep the size) or >= {CROP_SIZE} pixels, got {self.max_side}")


def as_bgr_image(image) -> np.ndarray:
    """Returns a contiguous (H, W, 3) uint8 BGR array; grey and BGRA inputs are converted."""
    if not isinstance(image, np.ndarray):
        raise FaceImageError(f"face image must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise FaceImageError(f"face image must be 8-bit (uint8), got {image.dtype}")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    elif image.ndim != 3 or image.shape[2] != 3:
        raise FaceImageError(f"face image must be HxW, HxWx3 or HxWx4, got shape {image.shape}")
    if image.shape[0] < CROP_SIZE // 4 or image.shape[1] < CROP_SIZE // 4:
        raise FaceImageError(f"face image of {image.shape[1]}x{image.shape[0]} pixels is too small")
    return np.ascontiguousarray(image)


class FaceDetector:
    """Largest frontal face in a BGR image, found with OpenCV's Haar cascades (see FRONTAL_CASCADES)."""

    def __init__(self, min_face_fraction: float = 0.1):
        self.min_face_fraction = min_face_fraction
        self._cascades = []
        for name in FRONTAL_CASCADES:
            cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
            if cascade.empty():
                raise RuntimeError(f"OpenCV cascade {name} could not be loaded from {cv2.data.haarcascades}")
            self._cascades.append(cascade)

    def detect(self, image_bgr: np.ndarray) -> Optional[Box]:
        """The largest face box, or None when no cascade finds a face."""
        height, width = image_bgr.shape[:2]
        scale = min(1.0, DETECTION_MAX_SIDE / max(height, width))
        gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        if scale < 1.0:
            gray = cv2.resize(gray, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        # Histogram equalisation makes the cascades far less sensitive to dim or washed-out portraits.
        gray = cv2.equalizeHist(gray)
        min_side = max(24, int(self.min_face_fraction * min(gray.shape)))
        for cascade in self._cascades:
            found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
            if len(found):
                x, y, w, h = max(found, key=lambda b: int(b[2]) * int(b[3]))
                return Box(round(x / scale), round(y / scale), round(w / scale), round(h / scale))
        return None


_default_detector: Optional[FaceDetector] = None


def detect_face(image_bgr: np.ndarray) -> Optional[Box]:
    """The largest face box in a BGR uint8 image with the default settings, or None."""
    global _default_detector
    if _default_detector is None:
        _default_detector = FaceDetector()
    return _default_detector.detect(as_bgr_image(image_bgr))


def check_box_inside(box: Box, image_shape: Sequence[int]) -> None:
    """Raises FaceImageError unless the box has an area and lies wholly inside the image."""
    height, width = image_shape[:2]
    if box.width <= 0 or box.height <= 0:
        raise FaceImageError(f"face box {tuple(box)} has no area")
    if box.x < 0 or box.y < 0 or box.x + box.width > width or box.y + box.height > height:
        raise FaceImageError(f"face box {tuple(box)} (x, y, width, height) reaches outside the {width}x{height} image")


def fit_within(image_bgr: np.ndarray, max_side: int) -> Tuple[np.ndarray, float]:
    """(image scaled down so its longer side is at most max_side, the scale); max_side 0 or a smaller
    image: the image itself and 1.0."""
    height, width = image_bgr.shape[:2]
    if max_side <= 0 or max(height, width) <= max_side:
        return image_bgr, 1.0
    scale = max_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image_bgr, size, interpolation=cv2.INTER_AREA), scale


def crop_region(box: Box, image_shape: Sequence[int], pads=(0, 10, 0, 0)) -> Tuple[int, int, int, int]:
    """The Wav2Lip crop (x1, y1, x2, y2): the box grown by pads (top, bottom, left, right), clamped."""
    height, width = image_shape[:2]
    top, bottom, left, right = pads
    x1, y1 = max(0, box.x - left), max(0, box.y - top)
    x2, y2 = min(width, box.x + box.width + right), min(height, box.y + box.height + bottom)
    if x2 - x1 < 2 or y2 - y1 < 2:
        raise FaceImageError(f"face box {tuple(box)} lies outside the {width}x{height} image")
    return x1, y1, x2, y2


def model_input(crop_bgr: np.ndarray) -> np.ndarray:
    """The generator's (6, 96, 96) float32 face input from a 96x96 BGR crop.

    Channels 0-2: the crop with its lower half zeroed (the part the generator redraws); channels 3-5:
    the crop itself as the identity reference. Values in [0, 1], BGR order, as Wav2Lip was trained.
    """
    face = crop_bgr.astype(np.float32).transpose(2, 0, 1) / 255.0
    masked = face.copy()
    masked[:, CROP_SIZE // 2:, :] = 0.0
    return np.ascontiguousarray(np.concatenate([masked, face], axis=0))


def _smoothstep_ramp(distance: np.ndarray, width: float) -> np.ndarray:
    t = np.clip(distance / width, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def blend_mask(height: int, width: int, blend_width_px: int, mask_top: float = 0.5) -> np.ndarray:
    """A (height, width) float32 weight of the generated face inside the crop, 0 at its border.

    Smoothstep ramps of blend_width_px pixels rise from the left, right and bottom edges and around the
    mask_top line, so the weight is continuous everywhere and exactly 1 over the mouth. (A Gaussian blur
    of a rectangle would leave a step at the crop border unless eroded by three sigmas; the ramps are
    exact and as cheap, and they are computed once per face.)
    """
    if blend_width_px <= 0:
        mask = np.zeros((height, width), np.float32)
        mask[int(round(mask_top * height)):, :] = 1.0
        return mask
    # Keep a full-weight interior on small crops: at most a quarter of each side ramps.
    ramp = float(min(blend_width_px, width / 4.0, height / 4.0))
    cols = np.arange(width, dtype=np.float64) + 0.5
    rows = np.arange(height, dtype=np.float64) + 0.5
    horizontal = _smoothstep_ramp(np.minimum(cols, width - cols), ramp)
    top_line = mask_top * height - ramp / 2.0
    vertical = _smoothstep_ramp(np.minimum(rows - top_line, height - rows), ramp)
    return np.outer(vertical, horizontal).astype(np.float32)


def paste_back(image_bgr: np.ndarray, region: Tuple[int, int, int, int], prediction: np.ndarray,
               mask: np.ndarray) -> np.ndarray:
    """A copy of image_bgr with the (3, 96, 96) [0, 1] BGR prediction blended into region by mask."""
    x1, y1, x2, y2 = region
    predicted = np.clip(prediction.transpose(1, 2, 0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    predicted = cv2.resize(predicted, (x2 - x1, y2 - y1), interpolation=cv2.INTER_LINEAR)
    out = image_bgr.copy()
    original = out[y1:y2, x1:x2]
    # blendLinear: per-pixel weighted sum, rounded and saturated to uint8 in one pass.
    out[y1:y2, x1:x2] = cv2.blendLinear(predicted, original, mask, 1.0 - mask)
    return out


def image_key(image_bgr: np.ndarray, box: Optional[Box]) -> bytes:
    """A digest of the pixels (and the box override) that identifies a face image cheaply."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr((image_bgr.shape, None if box is None else tuple(box))).encode())
    digest.update(memoryview(image_bgr).cast("B"))
    return digest.digest()


@dataclass(frozen=True)
class PreparedFace:
    """Everything a frame needs from the face, computed once."""
    image: np.ndarray          # (H, W, 3) uint8 BGR, read-only: the idle face
    box: Box                   # detected or given face box
    region: Tuple[int, int, int, int]  # padded, clamped crop (x1, y1, x2, y2)
    model_input: np.ndarray    # (6, 96, 96) float32, read-only
    mask: np.ndarray           # (y2-y1, x2-x1) float32 blend weight of the prediction
    detected: bool             # False: the box was given by the caller
    key: bytes

    def paste(self, prediction: np.ndarray) -> np.ndarray:
        """The full frame for one (3, 96, 96) generator output."""
        return paste_back(self.image, self.region, prediction, self.mask)


def prepare_face(image_bgr: np.ndarray, box: Box, detected: bool, config: FaceConfig, key: bytes) -> PreparedFace:
    region = crop_region(box, image_bgr.shape, config.pads)
    x1, y1, x2, y2 = region
    crop = cv2.resize(image_bgr[y1:y2, x1:x2], (CROP_SIZE, CROP_SIZE), interpolation=cv2.INTER_LINEAR)
    image = image_bgr.copy()
    inputs = model_input(crop)
    for array in (image, inputs):
        array.setflags(write=False)
    mask = blend_mask(y2 - y1, x2 - x1, config.blend_width_px, config.mask_top)
    return PreparedFace(image, box, region, inputs, mask, detected, key)


@dataclass(frozen=True)
class FaceUpdate:
    """What set_face did. ok: a usable face is in place (maybe the previous one); changed: a new one."""
    ok: bool
    changed: bool
    detected: bool
    box: Optional[Box]
    note: str


class FaceCache:
    """Holds the current face; a new image replaces it, an image seen recently costs only a hash.

    Thread-safe: one lock around each call, so detection may run on its own thread while frames are
    rendered from `face` (read once per frame; a face is immutable once prepared).
    """

    def __init__(self, config: FaceConfig = FaceConfig(), detector: Optional[FaceDetector] = None):
        self.config = config
        self._detector = detector
        self._lock = threading.Lock()
        # image key -> FaceUpdate, and the prepared face of each update that found one (most recent last)
        self._recent: "collections.OrderedDict[bytes, Tuple[FaceUpdate, Optional[PreparedFace]]]" = \
            collections.OrderedDict()
        self._last_key: Optional[bytes] = None
        self._last_image: Optional[np.ndarray] = None  # the last image given, to apply a new box to
        self.face: Optional[PreparedFace] = None
        self.note = "no face image received yet"  # of the last update that changed the face or found none

    @property
    def image_size(self) -> Optional[Tuple[int, int]]:
        """(width, height) of the last image given, in its own pixels (None before the first)."""
        image = self._last_image
        return None if image is None else (image.shape[1], image.shape[0])

    def set_box(self, box: Optional[Sequence[int]]) -> Optional[FaceUpdate]:
        """Prepares the last image given again with this box (None: detect); None if no image came yet."""
        image = self._last_image
        return None if image is None else self.set_face(image, box)

    def reconfigure(self, config: FaceConfig) -> None:
        """New crop and blend settings; the current face is prepared again from its box (not re-detected).
        A new max_side applies from the next face image."""
        with self._lock:
            if config.min_face_fraction != self.config.min_face_fraction:
                self._detector = None
            self.config = config

            def again(face):
                return prepare_face(face.image, face.box, face.detected, config, face.key)

            current = self.face
            for key, (update, face) in self._recent.items():
                if face is not None:
                    self._recent[key] = (update, again(face))
                    if face is current:
                        self.face = self._recent[key][1]
            if self.face is current and current is not None:
                self.face = again(current)

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self._detector = FaceDetector(self.config.min_face_fraction)
        return self._detector

    def set_face(self, image, box: Optional[Sequence[int]] = None) -> FaceUpdate:
        """Prepares image (BGR uint8) as the face; box (x, y, width, height, in the image's pixels) skips
        detection.

        Raises FaceImageError for arrays that cannot be images or a box not wholly inside the image. An
        image in which no face is found keeps the previous face (ok is True if there is one) and says so
        in note. An image larger than config.max_side is scaled down first (the note says so).
        """
        image = as_bgr_image(image)
        if box is not None:
            box = Box(*(int(v) for v in box))
            check_box_inside(box, image.shape)
        key = image_key(image, box)
        with self._lock:
            self._last_image = image
            return self._set_face(image, box, key)

    def _set_face(self, image: np.ndarray, box: Optional[Box], key: bytes) -> FaceUpdate:
        if key in self._recent:
            self._recent.move_to_end(key)
            update, face = self._recent[key]
            if face is not None:
                changed = face is not self.face
                self.face = face
                if changed:
                    self.note = update.note
                note = update.note if changed else "same face image as before: nothing to do"
                self._last_key = key
                return dataclasses.replace(update, changed=changed, note=note)
            if key == self._last_key:
                return update
        height, width = image.shape[:2]
        scaled, scale = fit_within(image, self.config.max_side)
        detected = box is None
        if detected:
            found = self.detector.detect(scaled)
        else:
            found = Box(*(round(v * scale) for v in box)) if scale != 1.0 else box
        if found is None:
            if self.face is None:
                note = f"no face found in the {width}x{height} image and no previous face: waiting for a face"
            else:
                note = f"no face found in the {width}x{height} image: kept the previous face"
            update, face = FaceUpdate(self.face is not None, False, False, None, note), None
        else:
            face = prepare_face(scaled, found, detected, self.config, key)
            how = "detected" if detected else "given"
            size = f" scaled to {scaled.shape[1]}x{scaled.shape[0]}" if scale != 1.0 else ""
            update = FaceUpdate(True, True, detected, found, f"face {how} at x={found.x} y={found.y} "
                                f"{found.width}x{found.height} in a {width}x{height} image{size}")
            self.face = face
        self._recent[key] = (update, face)
        self.note = update.note
        while len(self._recent) > RECENT_FACES:
            self._recent.popitem(last=False)
        self._last_key = key
        return update
