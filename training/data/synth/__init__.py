"""Synthetic talking-face benchmark: real face photos whose mouths follow the phonemes of espeak-ng speech.

Public API: ``SynthConfig``, ``generate_benchmark`` (``lightlip-data synth``), and the parts it is made of:
``synthesize`` (espeak-ng audio + phoneme timings), ``frame_track`` (phonemes -> per-frame jaw/spread/round),
``MouthRenderer`` / ``find_portrait_face`` (mouth location and rendering).
"""
from .benchmark import MANIFEST_NAME, SynthConfig, generate_benchmark, plan_benchmark, render_clip
from .render import MouthGeometry, MouthRenderer, find_portrait_face, locate_mouth
from .sentences import make_sentences
from .speech import synthesize
from .visemes import SHAPE_NAMES, Phoneme, frame_track, mouth_track, phoneme_shapes

__all__ = ["MANIFEST_NAME", "MouthGeometry", "MouthRenderer", "Phoneme", "SHAPE_NAMES", "SynthConfig",
           "find_portrait_face", "frame_track", "generate_benchmark", "locate_mouth", "make_sentences",
           "mouth_track", "phoneme_shapes", "plan_benchmark", "render_clip", "synthesize"]
