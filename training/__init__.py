"""Training: separation models (audio-visual and audio-only) trained from the manifests with Lightning."""
