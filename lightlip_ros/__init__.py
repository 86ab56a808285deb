"""LightLip: real-time speech-driven talking faces for robots."""
from pathlib import Path

__version__ = "0.1.0"
# The bundled face, speech, student model and Fast DDS profiles (installed with the package).
ASSETS = Path(__file__).resolve().parent / "assets"
