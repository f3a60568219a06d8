"""avforge: AVSpeech-like corpora from in-the-wild talks, on-the-fly speech mixtures, separation training.

The packages tell the pipeline's story: ``curation`` (videos -> clean single-speaker clips, on Dask),
``manifests`` (the Arrow tables every stage reads and writes), ``mixing`` (mixture recipes rendered on the
fly) and ``training`` (Lightning models trained from the manifests). This package holds what they share
at the ground floor (:mod:`avforge.core`: config loader, cluster shape, errors, atomic writes, media
rates) and what sits on top of them: interop, the synthetic talk-video generator, the command line
and the demo. The layers are listed in :mod:`avforge.core`.
"""

__version__ = "0.1.0"
