"""An independent mouth landmarker for evaluation: dlib's HOG face detector and 68-point shape predictor.

Independent means it shares nothing with what it judges: not the Haar detector that makes the crops, not
the synthetic renderer, not the generator. It is used only to *measure* (LMD, mouth opening); the product
never needs it. The 68-point model (from the face-recognition-models package) was trained on iBUG 300-W,
whose licence excludes commercial use: evaluation only, never ship it.

The landmarker comes from two optional packages (dlib-bin, face-recognition-models, listed in
requirements.txt); without them ``load_landmarker`` raises ``LandmarkerUnavailable`` with one line saying
what to install, and the metrics that need it are left out.
"""
import importlib.util
from pathlib import Path

import cv2
import numpy as np

from .layout import DataError

INSTALL_HINT = "pip install dlib-bin==20.0.1.post1 face-recognition-models==0.3.0"
MOUTH = slice(48, 68)  # the 20 mouth points of the 68-point scheme (outer lips 48-59, inner lips 60-67)
# Inner-lip pairs (upper, lower) whose vertical gaps measure the mouth opening.
_INNER_PAIRS = ((61, 67), (62, 66), (63, 65))
_OUTER_EYE_CORNERS = (36, 45)


class LandmarkerUnavailable(DataError):
    """The optional landmarker packages are not installed."""


def _model_file():
    # Located without importing face_recognition_models: its __init__ needs pkg_resources, which current
    # setuptools no longer ships.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    return path if path.is_file() else None


class MouthLandmarker:
    """68 facial landmarks of a face crop (e.g. a 96x96 generator crop).

    Small crops are upsampled (HOG needs faces of about 80 px) and padded by replicating the border (the
    detector needs some context around a tight crop). ``detect`` finds the face box once; ``landmarks`` can
    reuse it for another frame of the same face, so a generated frame is measured in exactly the box of its
    ground-truth frame.
    """

    name = "dlib 68-point shape predictor (HOG face box)"

    def __init__(self, upsample=2.0, margin=0.25):
        try:
            import dlib
        except ImportError as error:
            raise LandmarkerUnavailable(f"the eval landmarker needs dlib: {INSTALL_HINT}") from error
        model = _model_file()
        if model is None:
            raise LandmarkerUnavailable(f"the eval landmarker needs the 68-point model: {INSTALL_HINT}")
        self._dlib = dlib
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(model))
        self.upsample = float(upsample)
        self.margin = float(margin)

    def _prepare(self, crop_bgr):
        big = cv2.resize(crop_bgr, None, fx=self.upsample, fy=self.upsample, interpolation=cv2.INTER_CUBIC)
        pad = int(round(self.margin * big.shape[0]))
        big = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        return cv2.cvtColor(big, cv2.COLOR_BGR2GRAY), pad

    def detect(self, crop_bgr):
        """The face box (left, top, right, bottom) in the landmarker's working frame, or None."""
        gray, _ = self._prepare(crop_bgr)
        found = self._detector(gray, 0)
        if len(found) == 0:
            return None
        best = max(found, key=lambda r: r.area())
        return best.left(), best.top(), best.right(), best.bottom()

    def landmarks(self, crop_bgr, face=None):
        """(68, 2) float landmarks in crop pixels, or None when no face is found. face: a box from
        ``detect`` (of this or another frame of the same size) to use instead of detecting."""
        gray, pad = self._prepare(crop_bgr)
        if face is None:
            face = self.detect(crop_bgr)
            if face is None:
                return None
        shape = self._predictor(gray, self._dlib.rectangle(*(int(v) for v in face)))
        points = np.array([[p.x, p.y] for p in shape.parts()], np.float64)
        return (points - pad) / self.upsample


def load_landmarker():
    """The landmarker, or raise LandmarkerUnavailable (one line) when its packages are missing."""
    return MouthLandmarker()


def mouth_points(landmarks):
    return np.asarray(landmarks)[MOUTH]


def mouth_opening(landmarks):
    """Inner-lip gap (mean of three upper/lower point pairs), in the landmarks' pixels."""
    landmarks = np.asarray(landmarks)
    return float(np.mean([landmarks[lower, 1] - landmarks[upper, 1] for upper, lower in _INNER_PAIRS]))


def relative_opening(landmarks):
    """Inner-lip gap divided by the distance between the outer eye corners: a mouth opening that does not
    depend on the face's size in the picture (real speakers in frontal recordings: std 0.02-0.06, 95th
    percentile 0.08-0.22 over an utterance)."""
    landmarks = np.asarray(landmarks)
    eyes = float(np.linalg.norm(landmarks[_OUTER_EYE_CORNERS[1]] - landmarks[_OUTER_EYE_CORNERS[0]]))
    return mouth_opening(landmarks) / max(eyes, 1e-6)
