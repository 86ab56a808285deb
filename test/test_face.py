"""Face detection, the Wav2Lip crop, the model input, feathered paste-back and the face cache (no ROS)."""
from pathlib import Path

import cv2
import numpy as np
import pytest

from lightlip_ros.face import (CROP_SIZE, Box, FaceCache, FaceConfig, FaceDetector, FaceImageError, blend_mask,
                               crop_region, model_input, paste_back)

ASSETS = Path(__file__).resolve().parents[1] / "lightlip_ros" / "assets"
PORTRAITS = Path(__file__).resolve().parents[2] / "shared" / "data" / "portraits"


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def test_detects_the_bundled_face_around_the_eyes_and_mouth(face_image, detector):
    box = detector.detect(face_image)
    assert box is not None
    # Grace Hopper's face is in the middle of the photo, roughly 200-250 px wide.
    assert 120 < box.x < 190 and 40 < box.y < 110 and 190 < box.width < 260
    assert abs(box.width - box.height) <= 0.2 * box.width


def test_detects_faces_in_development_portraits(detector):
    if not PORTRAITS.is_dir():
        pytest.skip(f"development portraits not present at {PORTRAITS}")
    paths = sorted(PORTRAITS.glob("*.jpg"))
    found = 0
    for path in paths:
        image = cv2.imread(str(path))
        box = detector.detect(image)
        if box is not None:
            found += 1
            # The largest face of a portrait is a large part of it, never a speck.
            assert box.width >= 0.15 * min(image.shape[:2]), path.name
    assert found == len(paths)


def test_no_face_in_a_flat_image(detector):
    assert detector.detect(np.full((240, 320, 3), 128, np.uint8)) is None


def test_detection_downscales_large_images_and_returns_original_pixels(face_image, detector):
    small = detector.detect(face_image)
    big = detector.detect(cv2.resize(face_image, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC))
    assert big is not None
    for a, b in zip(small, big):
        assert abs(3 * a - b) <= 0.15 * 3 * small.width


def test_crop_region_pads_bottom_and_clamps_to_image():
    assert crop_region(Box(10, 20, 50, 60), (200, 300)) == (10, 20, 60, 90)
    # Bottom pad clamped at the image's lower edge, negative corners clamped at 0.
    assert crop_region(Box(-5, 150, 50, 45), (200, 300)) == (0, 150, 45, 200)
    with pytest.raises(FaceImageError):
        crop_region(Box(400, 400, 50, 50), (200, 300))


def test_model_input_masks_lower_half_and_keeps_reference():
    crop = np.random.default_rng(0).integers(0, 256, (CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
    inputs = model_input(crop)
    assert inputs.shape == (6, 96, 96) and inputs.dtype == np.float32
    reference = crop.transpose(2, 0, 1) / 255.0
    np.testing.assert_allclose(inputs[3:], reference, atol=1e-7)
    np.testing.assert_allclose(inputs[:3, :48], reference[:, :48], atol=1e-7)
    assert not inputs[:3, 48:].any()
    # BGR order is kept: channel 0 is the crop's first (blue) channel.
    np.testing.assert_allclose(inputs[3], crop[:, :, 0] / 255.0, atol=1e-7)


def test_blend_mask_is_zero_at_the_border_and_one_over_the_mouth():
    mask = blend_mask(100, 90, 12)
    assert mask.shape == (100, 90)
    assert mask[:, 0].max() < 0.01 and mask[:, -1].max() < 0.01 and mask[-1].max() < 0.01
    assert mask[:40].max() == 0.0  # the upper face stays the original
    assert mask[60:85, 15:75].min() == 1.0
    # Continuous: neighbouring pixels never differ by more than the ramp's steepest step.
    assert np.abs(np.diff(mask, axis=0)).max() < 0.15
    assert np.abs(np.diff(mask, axis=1)).max() < 0.15


def _border_jumps(out, original, region):
    """Largest extra brightness step the paste adds across each edge of the crop region."""
    x1, y1, x2, y2 = region
    out, original = out.astype(np.int32), original.astype(np.int32)
    jumps = []
    for image in (out, original):
        left = np.abs(image[y1:y2, x1] - image[y1:y2, x1 - 1])
        right = np.abs(image[y1:y2, x2 - 1] - image[y1:y2, x2])
        bottom = np.abs(image[y2 - 1, x1:x2] - image[y2, x1:x2])
        jumps.append((left.max(), right.max(), bottom.max()))
    return [pasted - base for pasted, base in zip(*jumps)]


def test_flat_prediction_pastes_without_a_visible_rectangle(face_image):
    cache = FaceCache(FaceConfig(blend_width_px=16))
    assert cache.set_face(face_image).ok
    face = cache.face
    prediction = np.zeros((3, 96, 96), np.float32)
    prediction[2] = 1.0  # saturated red: the worst case for a visible seam
    out = face.paste(prediction)
    assert out.shape == face_image.shape and out.dtype == np.uint8
    # Across the crop border the paste adds at most a few grey levels of step.
    assert max(_border_jumps(out, face_image, face.region)) <= 6
    # The mouth area takes the prediction exactly.
    x1, y1, x2, y2 = face.region
    mouth = out[y1 + int(0.7 * (y2 - y1)), (x1 + x2) // 2]
    assert tuple(mouth) == (0, 0, 255)
    # The upper face and everything outside the crop stay the original image.
    np.testing.assert_array_equal(out[:y1 + int(0.3 * (y2 - y1))], face_image[:y1 + int(0.3 * (y2 - y1))])
    np.testing.assert_array_equal(out[:, :x1], face_image[:, :x1])
    np.testing.assert_array_equal(out[y2:], face_image[y2:])


def test_hard_paste_would_show_the_rectangle(face_image):
    # The same measurement on an unfeathered paste finds the seam: the check above can fail.
    cache = FaceCache(FaceConfig(blend_width_px=0))
    cache.set_face(face_image)
    prediction = np.zeros((3, 96, 96), np.float32)
    prediction[2] = 1.0
    out = cache.face.paste(prediction)
    assert max(_border_jumps(out, face_image, cache.face.region)) > 100


def test_paste_back_resizes_the_prediction_to_the_region():
    image = np.zeros((50, 60, 3), np.uint8)
    prediction = np.full((3, 96, 96), 0.5, np.float32)
    out = paste_back(image, (10, 5, 40, 45), prediction, np.ones((40, 30), np.float32))
    assert (out[5:45, 10:40] == 128).all()
    assert not out[:5].any() and not out[:, :10].any() and not out[:, 40:].any()


def test_face_cache_reuses_same_image_and_keeps_last_good_face(face_image):
    cache = FaceCache()
    first = cache.set_face(face_image)
    assert first.ok and first.changed and first.detected
    prepared = cache.face
    again = cache.set_face(face_image.copy())
    assert again.ok and not again.changed and cache.face is prepared
    blank = np.full((200, 200, 3), 90, np.uint8)
    missing = cache.set_face(blank)
    assert missing.ok and not missing.changed and "kept the previous face" in missing.note
    assert cache.face is prepared
    # A changed image replaces the face.
    flipped = np.ascontiguousarray(face_image[:, ::-1])
    assert cache.set_face(flipped).changed
    assert cache.face is not prepared


def test_face_cache_without_face_reports_waiting():
    update = FaceCache().set_face(np.full((200, 200, 3), 90, np.uint8))
    assert not update.ok and "no previous face" in update.note


def test_box_override_skips_detection(face_image):
    cache = FaceCache()
    update = cache.set_face(face_image, box=(100, 100, 120, 140))
    assert update.ok and update.changed and not update.detected
    assert cache.face.region == (100, 100, 220, 250)
    # The same image with another box is another face.
    assert cache.set_face(face_image, box=(90, 100, 120, 140)).changed
    with pytest.raises(FaceImageError):
        cache.set_face(face_image, box=(0, 0, 0, 10))


@pytest.mark.parametrize("bad", [np.zeros((100, 100, 3), np.float32), np.zeros((100, 100, 2), np.uint8),
                                 np.zeros((5, 5, 3), np.uint8), "face.jpg"])
def test_malformed_images_raise_readable_errors(bad):
    with pytest.raises(FaceImageError) as error:
        FaceCache().set_face(bad)
    assert "\n" not in str(error.value)


def test_grey_and_bgra_images_are_accepted(face_image):
    grey = cv2.cvtColor(face_image, cv2.COLOR_BGR2GRAY)
    assert FaceCache().set_face(grey).ok
    assert FaceCache().set_face(cv2.cvtColor(face_image, cv2.COLOR_BGR2BGRA)).ok


class CountingDetector(FaceDetector):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def detect(self, image_bgr):
        self.calls += 1
        return super().detect(image_bgr)


def test_alternating_faces_are_detected_once_each(face_image):
    detector = CountingDetector()
    cache = FaceCache(detector=detector)
    flipped = np.ascontiguousarray(face_image[:, ::-1])
    faces = []
    for image in (face_image, flipped) * 5:
        update = cache.set_face(image.copy())
        assert update.ok and update.changed, update.note
        faces.append(cache.face)
    assert detector.calls == 2
    assert faces[0] is faces[2] and faces[1] is faces[3] and faces[0] is not faces[1]


def test_a_large_image_is_scaled_down_once_to_max_side(face_image):
    big = np.zeros((2160, 3840, 3), np.uint8)  # a 4K camera picture with the face in its middle
    big[:, 840:3000] = cv2.resize(face_image, (2160, 2160), interpolation=cv2.INTER_CUBIC)
    cache = FaceCache(FaceConfig(max_side=1280))
    update = cache.set_face(big)
    assert update.ok and "scaled to 1280x720" in update.note, update.note
    assert cache.face.image.shape == (720, 1280, 3)
    assert cache.face.paste(np.zeros((3, 96, 96), np.float32)).shape == (720, 1280, 3)
    # A given box is in the image's own pixels and follows the scaling.
    cache.set_face(big, box=(1500, 300, 600, 600))
    assert cache.face.box == (500, 100, 200, 200)
    unscaled = FaceCache(FaceConfig(max_side=0))
    unscaled.set_face(big, box=(1500, 300, 600, 600))
    assert unscaled.face.image.shape == big.shape


@pytest.mark.parametrize("box", [(0, 0, 0, 10), (-1, 0, 50, 50), (480, 100, 50, 50), (100, 500, 50, 20)])
def test_a_box_not_inside_the_image_is_refused(face_image, box):
    with pytest.raises(FaceImageError) as error:
        FaceCache().set_face(face_image, box=box)
    assert str(tuple(box)) in str(error.value)


def test_a_new_box_applies_to_the_last_image(face_image):
    cache = FaceCache()
    assert cache.set_box((10, 10, 50, 50)) is None and cache.image_size is None
    blank = np.full((200, 300, 3), 90, np.uint8)
    assert not cache.set_face(blank).ok  # no face found: the user gives the box instead
    assert cache.image_size == (300, 200)
    update = cache.set_box((100, 50, 80, 80))
    assert update.ok and update.changed and not update.detected and cache.face.box == (100, 50, 80, 80)
    with pytest.raises(FaceImageError):
        cache.set_box((250, 50, 80, 80))
    assert cache.face.box == (100, 50, 80, 80)
    cache.set_face(face_image)
    assert cache.set_box(None).detected  # back to detection on the bundled face
