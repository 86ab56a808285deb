"""Mouth shapes from phoneme timings: targets per espeak-ng phoneme, blended over time (coarticulation).

A mouth shape is three numbers in [0, 1]: jaw opening, lip spread and lip rounding. Each phoneme has a target
shape and a dominance (how strongly it pulls the mouth towards its target); the track at time t is the
dominance-weighted mean of all targets, with dominance decaying as exp(-(d/tau)^1.5) at distance d outside
each phoneme (the Cohen-Massaro coarticulation model). Lip closures (p, b, m) and labiodentals (f, v) dominate
strongly so the lips really close; h and reduced vowels dominate weakly and take their neighbours' shapes.
Rounding spreads further in time than jaw opening (anticipatory rounding), as in natural speech.
"""
from dataclasses import dataclass

import numpy as np

JAW, SPREAD, ROUND = 0, 1, 2
SHAPE_NAMES = ("jaw", "spread", "round")

# (jaw, spread, round); diphthongs are sequences of shapes over equal parts of the phoneme.
_REST = (0.0, 0.0, 0.0)
_VOWELS = {
    "a": [(0.75, 0.45, 0.0)], "aa": [(0.9, 0.2, 0.0)], "a#": [(0.55, 0.2, 0.0)], "A:": [(0.95, 0.1, 0.05)],
    "A@": [(0.9, 0.1, 0.05), (0.45, 0.1, 0.2)], "A": [(0.9, 0.1, 0.05)], "V": [(0.65, 0.2, 0.0)],
    "@": [(0.4, 0.15, 0.0)], "@L": [(0.3, 0.25, 0.0)], "3": [(0.35, 0.05, 0.3)], "3:": [(0.45, 0.1, 0.25)],
    "E": [(0.6, 0.5, 0.0)], "e": [(0.5, 0.55, 0.0)], "e@": [(0.55, 0.45, 0.0), (0.4, 0.15, 0.0)],
    "I": [(0.35, 0.65, 0.0)], "i": [(0.3, 0.75, 0.0)], "i:": [(0.25, 0.9, 0.0)],
    "i@": [(0.3, 0.75, 0.0), (0.4, 0.15, 0.0)], "0": [(0.75, 0.0, 0.45)], "O": [(0.65, 0.0, 0.6)],
    "O:": [(0.6, 0.0, 0.75)], "O@": [(0.6, 0.0, 0.7), (0.4, 0.05, 0.3)], "o@": [(0.55, 0.0, 0.7)],
    "o": [(0.5, 0.0, 0.7)], "oU": [(0.5, 0.0, 0.7), (0.3, 0.0, 0.9)], "U": [(0.3, 0.0, 0.8)],
    "u:": [(0.2, 0.0, 1.0)], "u": [(0.2, 0.0, 1.0)], "U@": [(0.3, 0.0, 0.8), (0.4, 0.15, 0.0)],
    "aI": [(0.85, 0.3, 0.0), (0.35, 0.6, 0.0)], "aU": [(0.85, 0.2, 0.0), (0.3, 0.0, 0.85)],
    "eI": [(0.5, 0.55, 0.0), (0.35, 0.65, 0.0)], "OI": [(0.6, 0.0, 0.7), (0.35, 0.65, 0.0)],
    "aI@": [(0.85, 0.3, 0.0), (0.35, 0.6, 0.0), (0.4, 0.15, 0.0)],
    "aU@": [(0.85, 0.2, 0.0), (0.3, 0.0, 0.85), (0.4, 0.15, 0.0)],
}
_CONSONANTS = {
    "p": (0.0, 0.1, 0.0), "b": (0.0, 0.1, 0.0), "m": (0.0, 0.1, 0.0),
    "f": (0.08, 0.25, 0.0), "v": (0.08, 0.25, 0.0),
    "T": (0.2, 0.3, 0.0), "D": (0.2, 0.3, 0.0),
    "t": (0.2, 0.35, 0.0), "d": (0.2, 0.35, 0.0), "n": (0.2, 0.3, 0.0), "l": (0.25, 0.3, 0.0),
    "s": (0.12, 0.45, 0.0), "z": (0.12, 0.45, 0.0),
    "S": (0.15, 0.1, 0.6), "Z": (0.15, 0.1, 0.6), "tS": (0.15, 0.1, 0.6), "dZ": (0.15, 0.1, 0.6),
    "k": (0.3, 0.2, 0.0), "g": (0.3, 0.2, 0.0), "N": (0.3, 0.2, 0.0), "x": (0.3, 0.1, 0.0),
    "h": (0.4, 0.2, 0.0), "r": (0.2, 0.0, 0.5), "w": (0.1, 0.0, 1.0), "j": (0.15, 0.6, 0.0),
    "?": (0.1, 0.2, 0.0),
}
# Dominance per class for (jaw, spread, round).
_DOMINANCE = {
    "bilabial": (4.0, 2.0, 1.0), "labiodental": (2.5, 1.5, 1.0), "sibilant": (1.2, 1.0, 1.0),
    "postalveolar": (1.0, 1.0, 2.0), "rounded": (1.5, 1.0, 4.0), "r": (0.7, 0.7, 1.5),
    "weak": (0.2, 0.2, 0.2), "coronal": (0.5, 0.6, 0.4), "velar": (0.4, 0.4, 0.4), "glide": (1.0, 1.5, 0.5),
    "vowel": (1.0, 1.0, 1.0), "pause": (1.5, 1.0, 1.0),
}
_CLASS = {"p": "bilabial", "b": "bilabial", "m": "bilabial", "f": "labiodental", "v": "labiodental",
          "s": "sibilant", "z": "sibilant", "S": "postalveolar", "Z": "postalveolar", "tS": "postalveolar",
          "dZ": "postalveolar", "w": "rounded", "r": "r", "h": "weak", "j": "glide", "k": "velar",
          "g": "velar", "N": "velar", "x": "velar"}
# Time constants (s) of the dominance decay outside a phoneme, per shape dimension.
_DECAY_S = np.array([0.03, 0.035, 0.06])
# Shape of the decay: exp(-(d / decay) ** _DECAY_POWER); above 1 keeps long phonemes near their target.
_DECAY_POWER = 1.5


@dataclass(frozen=True)
class Phoneme:
    """One phoneme of an utterance: espeak-ng mnemonic and its time span in seconds."""

    name: str
    start: float
    end: float


def _normalise(name):
    """espeak-ng marks variants with suffixes (t#, @2, r-, aI2, w#); the mouth shape is the base phoneme's."""
    base = name.rstrip("#-;0123456789") if len(name) > 1 else name
    return base or name


def phoneme_shapes(name):
    """(shapes, dominance class) of an espeak-ng English phoneme; shapes is a list of (jaw, spread, round)."""
    base = _normalise(name)
    if base.startswith("_") or base in ("", ";"):
        return [_REST], "pause"
    if base in _VOWELS:
        return _VOWELS[base], "vowel"
    if base in _CONSONANTS:
        return [_CONSONANTS[base]], _CLASS.get(base, "coronal")
    # Unknown phoneme (another dialect's inventory): judge by its first letter.
    if base[0] in "aAeEiIoOuUV@03":
        return [(0.5, 0.2, 0.1)], "vowel"
    return [(0.2, 0.25, 0.0)], "coronal"


def _segments(phonemes):
    """Split every phoneme into one segment per target shape; returns (starts, ends, targets, dominance)."""
    starts, ends, targets, dominance = [], [], [], []
    for phoneme in phonemes:
        if phoneme.end <= phoneme.start:
            continue
        shapes, kind = phoneme_shapes(phoneme.name)
        edges = np.linspace(phoneme.start, phoneme.end, len(shapes) + 1)
        for shape, start, end in zip(shapes, edges[:-1], edges[1:]):
            starts.append(start)
            ends.append(end)
            targets.append(shape)
            dominance.append(_DOMINANCE[kind])
    return (np.array(starts), np.array(ends), np.array(targets, dtype=np.float64).reshape(-1, 3),
            np.array(dominance, dtype=np.float64).reshape(-1, 3))


def mouth_track(phonemes, times):
    """Mouth shape (len(times), 3) = (jaw, spread, round) at the given times (s) from the phoneme spans.

    Times before the first or after the last phoneme take the rest shape (closed mouth), which is also a
    weak presence everywhere so that long gaps relax towards it.
    """
    times = np.asarray(times, dtype=np.float64)
    starts, ends, targets, dominance = _segments(phonemes)
    rest_dominance = 0.05
    if len(starts) == 0:
        return np.zeros((len(times), 3))
    # Distance (s) from each time to each segment; 0 inside it.
    distance = np.maximum(0.0, np.maximum(starts[None, :] - times[:, None], times[:, None] - ends[None, :]))
    weights = dominance[None, :, :] * np.exp(-(distance[:, :, None] / _DECAY_S[None, None, :]) ** _DECAY_POWER)
    track = (weights * targets[None, :, :]).sum(axis=1) / (weights.sum(axis=1) + rest_dominance)
    return np.clip(track, 0.0, 1.0)


def frame_track(phonemes, n_frames, fps):
    """Mouth shape of video frame i at its timestamp i / fps, as a camera would record it."""
    return mouth_track(phonemes, np.arange(n_frames) / float(fps))
