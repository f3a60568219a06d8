"""Mixing: multi-speaker + noise + reverb mixtures, first as recipes, rendered on the fly."""
