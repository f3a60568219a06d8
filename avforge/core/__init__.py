"""avforge's ground floor: what every package shares, importing none of them.

- :mod:`avforge.core.config`: the strict typed-config loader (:class:`ConfigError`, range checks,
  resolved configs written next to every output);
- :mod:`avforge.core.cluster`: the Dask cluster shape and client;
- :mod:`avforge.core.errors`: systemic errors (stop the run, blame no source);
- :mod:`avforge.core.files`: the atomic write every output goes through;
- :mod:`avforge.core.media`: the corpus's audio rate and video frame rate;
- :mod:`avforge.core.ids`: stable short hashes, :class:`~avforge.core.ids.Split` and the one hash
  train / val / test split rule (curation, interop, noises and rooms);
- :mod:`avforge.core.signal`: resampling and the active-speech level (frame powers, active frames,
  SNR gains) every stage measures with;
- :mod:`avforge.core.assets`: the bundled real voices, noise, music and talking-face clips.

Layers, each importing only from itself and the layers below it (``tests/test_layers.py`` checks
it, ``make layers`` runs that check, ``.ci/run`` runs ``make layers``; docs/architecture.md):

1. ground floor: ``avforge.core`` (and ``avforge/__init__``: the version);
2. ``manifests``: the Arrow tables;
3. stages: ``curation`` and ``mixing`` (independent of each other);
4. ``training``;
5. interop, testing and tools: ``avforge.interop``, ``avforge.testing``, ``avforge.synth``,
   ``avforge.variants``, the calibration tools ``curation.calibrate*``;
6. command line and demo: ``avforge.cli``, ``avforge.cli_errors``, ``avforge.doctor``,
   ``avforge.demo*`` and each package's ``cli`` module.
"""
