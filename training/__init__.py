"""Offline tools: data, lip-sync expert, teacher, distillation, quantization, engines, benchmarks."""
