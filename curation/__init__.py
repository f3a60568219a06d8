"""Curation: talk videos -> clean single-speaker clips (fetch, decode, VAD, faces, SNR, select, export).

Each stage is a pure function in its own module; ``tasks`` is the thin Dask layer that maps them over
sources, one task and one output shard per source.
"""
