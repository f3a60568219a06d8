"""Separation models, composed from encoder, streams, fusion and mask parts."""
