"""Renders a portrait's mouth in a given shape: a smooth warp of the lower face plus a visible mouth cavity.

The jaw opening moves the lower lip and chin down (the upper lip stays), spreading widens the mouth and
rounding narrows it. The warp is a displacement field applied with cv2.remap to a region around the mouth
only; where the lips part, a dark mouth cavity with upper teeth is painted with a soft edge, so a landmarker
sees the mouth open. All geometry is in the portrait's pixels and derives from the recorded mouth location.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from lightlip_ros.face import Box, FaceDetector

# Mouth location relative to the Haar face box of lightlip_ros.face.FaceDetector, measured on the 25
# development portraits and the bundled face with an independent 68-point landmarker: the lip seam lies at
# 0.80 of the box height (spread 0.03), centred horizontally, and the mouth is 0.30 of the box wide.
MOUTH_Y_FRACTION = 0.80
MOUTH_WIDTH_FRACTION = 0.30
# The seam search looks this far (fraction of the box height) above and below the expected line.
SEAM_SEARCH_FRACTION = 0.07
# Largest opening (jaw = 1) as a fraction of the mouth width, and width changes for spread and rounding.
MAX_OPENING = 0.45
SPREAD_GAIN = 0.15
ROUND_GAIN = 0.25
_CAVITY_BGR = np.array([28, 22, 60], np.float32)
_TONGUE_BGR = np.array([50, 55, 125], np.float32)
_TEETH_BGR = np.array([200, 208, 215], np.float32)


@dataclass(frozen=True)
class MouthGeometry:
    """Where the mouth of a portrait is: lip-seam centre (x, y) and mouth width, in image pixels."""

    center_x: float
    center_y: float
    width: float

    def scaled(self, factor):
        return MouthGeometry(self.center_x * factor, self.center_y * factor, self.width * factor)

    def to_dict(self):
        return {"center_x": round(self.center_x, 2), "center_y": round(self.center_y, 2),
                "width": round(self.width, 2)}


def locate_mouth(image_bgr, box):
    """Mouth of a frontal face in its face box: fixed proportions, the seam row refined to the darkest
    horizontal line (the lips' shadow) near the expected height."""
    x, y, w, h = box
    expected_y = y + MOUTH_Y_FRACTION * h
    top = int(max(0, expected_y - SEAM_SEARCH_FRACTION * h))
    bottom = int(min(image_bgr.shape[0], expected_y + SEAM_SEARCH_FRACTION * h + 1))
    left, right = int(x + 0.4 * w), int(x + 0.6 * w)
    gray = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
    band = cv2.GaussianBlur(gray[top:bottom, left:right], (0, 0), max(1.0, w / 100.0))
    rows = np.arange(top, bottom, dtype=np.float32)
    # Darkness profile with a mild pull towards the expected height, so a dark beard or collar far from
    # the lips cannot win.
    prior = 20.0 * ((rows - expected_y) / (SEAM_SEARCH_FRACTION * h)) ** 2
    seam_y = float(rows[int(np.argmin(band.mean(axis=1) + prior))]) if len(rows) else expected_y
    return MouthGeometry(x + 0.5 * w, seam_y, MOUTH_WIDTH_FRACTION * w)


def find_portrait_face(image_bgr, detector=None):
    """(face box, mouth) of a portrait, or None when no face is found."""
    box = (detector or FaceDetector()).detect(image_bgr)
    if box is None:
        return None
    return Box(*box), locate_mouth(image_bgr, box)


def _smoothstep(x):
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class RenderedMouth:
    """Boxes (x1, y1, x2, y2) in image pixels of the outer lips and of the visible opening."""

    lips: tuple
    opening: tuple


class MouthRenderer:
    """Draws one portrait with its mouth in any shape; only a region around the mouth is recomputed."""

    def __init__(self, image_bgr, mouth, face_height, teeth_tint=1.0):
        self.image = np.ascontiguousarray(image_bgr)
        self.mouth = mouth
        self.half_width = mouth.width / 2.0
        self.teeth_bgr = np.clip(_TEETH_BGR * teeth_tint, 0, 255)
        height, width = self.image.shape[:2]
        hw = self.half_width
        # The chin sits about a quarter of the face height below the seam; the jaw's motion fades out
        # below it over a further third of the face height (the neck does not move).
        self.chin_offset = 0.25 * face_height
        self.fade_length = 0.35 * face_height
        x1 = int(max(0, np.floor(mouth.center_x - 2.4 * hw)))
        x2 = int(min(width, np.ceil(mouth.center_x + 2.4 * hw)))
        y1 = int(max(0, np.floor(mouth.center_y - 1.2 * hw)))
        y2 = int(min(height, np.ceil(mouth.center_y + self.chin_offset + self.fade_length)))
        self.roi = (x1, y1, x2, y2)
        cols = np.arange(x1, x2, dtype=np.float32) - np.float32(mouth.center_x)
        rows = np.arange(y1, y2, dtype=np.float32) - np.float32(mouth.center_y)
        self.u, self.v = np.meshgrid(cols, rows)
        self.canvas = self.image.copy()

    def render(self, jaw, spread, rounding):
        """The portrait with this mouth shape (a view of an internal buffer: copy it to keep it) and the
        mouth boxes."""
        hw = self.half_width
        u, v = self.u, self.v
        opening = float(jaw) * MAX_OPENING * self.mouth.width
        width_change = SPREAD_GAIN * float(spread) - ROUND_GAIN * float(rounding)
        lip_half_width = hw * (1.0 + width_change)
        cavity_half_width = lip_half_width * (1.0 - 0.25 * float(rounding)) * 0.95

        # Vertical: the lower lip parts along an elliptic profile; further down the whole jaw moves.
        lip_profile = opening * np.sqrt(np.clip(1.0 - (u / max(cavity_half_width, 1e-3)) ** 2, 0.0, 1.0))
        jaw_profile = opening * np.exp(-(u / (1.8 * hw)) ** 2)
        shift = lip_profile + (jaw_profile - lip_profile) * _smoothstep(v / (1.2 * hw))
        parted = np.clip(v / np.maximum(lip_profile, 1e-3), 0.0, 1.0) * (v > 0)
        fade = 1.0 - _smoothstep((v - self.chin_offset) / self.fade_length)
        source_v = v - shift * parted * fade
        # Horizontal: scale about the mouth centre, strongest at the lips.
        weight = np.exp(-(u / (1.5 * hw)) ** 2 - ((v - opening / 2.0) / hw) ** 2)
        source_u = u - width_change * u * weight

        x1, y1, x2, y2 = self.roi
        map_x = (source_u + np.float32(self.mouth.center_x)).astype(np.float32)
        map_y = (source_v + np.float32(self.mouth.center_y)).astype(np.float32)
        warped = cv2.remap(self.image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        if opening >= 0.5:
            warped = self._paint_cavity(warped, opening, cavity_half_width, float(jaw), float(rounding))
        self.canvas[y1:y2, x1:x2] = warped

        cx, cy = self.mouth.center_x, self.mouth.center_y
        lips = (cx - lip_half_width, cy - 0.45 * hw, cx + lip_half_width, cy + opening + 0.5 * hw)
        inner = (cx - cavity_half_width, cy, cx + cavity_half_width, cy + opening)
        return self.canvas, RenderedMouth(lips, inner)

    def _paint_cavity(self, warped, opening, half_width, jaw, rounding):
        x1, y1 = self.roi[:2]
        height, width = warped.shape[:2]
        # Anti-aliased ellipse at 1/16 pixel precision, softened by a fraction of a pixel.
        shift = 4
        center = (int(round((self.mouth.center_x - x1) * (1 << shift))),
                  int(round((self.mouth.center_y + opening / 2.0 - y1) * (1 << shift))))
        axes = (int(round(half_width * (1 << shift))), int(round(opening / 2.0 * (1 << shift))))
        mask = np.zeros((height, width), np.uint8)
        cv2.ellipse(mask, center, axes, 0, 0, 360, 255, -1, cv2.LINE_AA, shift)
        alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 0.6)[..., None]

        rows = (np.arange(height, dtype=np.float32) + y1 - self.mouth.center_y)[:, None, None]
        depth = np.clip(rows / max(opening, 1e-3), 0.0, 1.0)  # 0 at the upper lip, 1 at the lower lip
        colour = _CAVITY_BGR + (_TONGUE_BGR - _CAVITY_BGR) * (_smoothstep((depth - 0.55) / 0.45) * min(1.0, jaw))
        # Upper teeth show under the upper lip once the jaw opens, less when the lips round.
        teeth_height = min(0.3 * opening, 0.22 * self.half_width)
        teeth_alpha = np.clip((jaw - 0.08) / 0.25, 0.0, 1.0) * (1.0 - 0.8 * rounding)
        teeth = (rows <= teeth_height).astype(np.float32) * teeth_alpha
        colour = colour + (self.teeth_bgr - colour) * teeth
        blended = warped.astype(np.float32) * (1.0 - alpha) + colour * alpha
        return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
