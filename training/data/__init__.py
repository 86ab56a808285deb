"""Data: the Wav2Lip on-disk layout, training samples, preprocessing of videos, the synthetic benchmark,
the independent mouth landmarker, and evaluation (`lightlip-data`)."""
