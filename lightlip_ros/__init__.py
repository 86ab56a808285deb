"""LightLip: real-time speech-driven talking faces for robots."""

__version__ = "0.1.0"
