"""Engine backends, one per file; each registers itself in ``lamm.infer.engine.BACKENDS``."""
