"""Offline tools, by concern: data (layout, samples, preprocessing, the synthetic benchmark, evaluation),
train (the lip-sync expert, teacher, distillation), quant (selective mixed precision) and deploy (TensorRT
engines, latency benchmarks)."""
