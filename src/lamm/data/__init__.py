"""Data: LAMM instruction records, sources, builders (C1-C4), synthetic generators, conversion, stats."""
