"""lamm — multimodal large language models over 2D images and 3D point clouds.

Dataset construction (C1–C4 instruction data), a training framework (encoders + projector + any
Hugging Face causal LM) and a benchmark (LAMM-Benchmark 2D/3D, ChEF-style recipes).
"""

__version__ = "0.1.0"
