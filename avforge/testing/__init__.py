"""Scaffolding for tests and benchmarks, shipped with avforge (as ``lhotse.testing`` is with Lhotse).

- :mod:`avforge.testing.corpus`: a small corpus built directly from the bundled real speech (CMU
  ARCTIC, LibriSpeech) with drawn face tracks and the bundled noises, for mixing and training;
- :mod:`avforge.testing.training_corpus`: the two-speaker real-speech corpus and tiny model and
  config sizes of the training tests and the training benchmark.

The loopback HTTP server with its fault routes is :mod:`avforge.synth.serve`; the variants of real
clips (dubbed, shifted, still face, ...) are :mod:`avforge.variants`. Benchmarks import these, never
``tests/``. Layer 5 of docs/architecture.md: it may use the stages and training, nothing may import
it but tests, benchmarks, the demo and the command line.
"""
