"""avforge: AVSpeech-like corpora from in-the-wild talks, on-the-fly speech mixtures, separation training.

The packages tell the pipeline's story: ``curation`` (videos -> clean single-speaker clips, on Dask),
``manifests`` (the Arrow tables every stage reads and writes), ``mixing`` (mixture recipes rendered on the
fly) and ``training`` (Lightning models trained from the manifests). This package holds what they share:
the command line, the typed-config loader, the Dask cluster shape and the synthetic talk-video generator.
"""

__version__ = "0.1.0"
