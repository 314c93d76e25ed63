"""Synthetic, deterministic 2D and 3D data behind ``lamm data synth`` and the quickstart.

2D: coloured primitives (circle, square, triangle, star, hexagon, cross, diamond) on light backgrounds
with exact boxes, keypoints, colours and rendered words. 3D: primitive point clouds (cube, sphere,
cylinder, cone, torus, pyramid, capsule) and scenes of them on a floor, with axis-aligned boxes and
unambiguous referring expressions. Both are written as raw annotations (COCO-style / ScanNet-like) and
as LAMM-Benchmark files; see :mod:`lamm.data.synthetic.writer` for the layout.
"""

from lamm.data.synthetic.writer import SynthConfig, synthesize

__all__ = ["SynthConfig", "synthesize"]
