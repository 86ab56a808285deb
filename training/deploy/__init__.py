"""Deployment: TensorRT engine building on the robot (`lightlip-build-engine`, which imports no training
code) and the teacher-vs-student latency benchmark (`lightlip-bench`)."""
