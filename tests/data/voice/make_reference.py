"""Makes reference_resemblyzer.npz with the reference implementation (run by hand, not a test).

Resemblyzer 0.1.4 (its wheel unpacked in /tmp/resem/x) + librosa 0.11.0 installed outside the project
(``pip install --target /tmp/libro librosa``). Mel spectrograms are kept for their first 100 frames.
"""

import sys

sys.path.append("/tmp/libro")
sys.path.append("/tmp/resem/x")

import numpy as np
import soundfile as sf
from resemblyzer import VoiceEncoder, preprocess_wav
from resemblyzer import audio as raudio

out = {}
enc = VoiceEncoder(device="cpu", verbose=False)
for name in ["8629-261139-0000", "1363-135842-0000"]:
    a, sr = sf.read(f"tests/data/audio/{name}.flac", dtype="float32")
    wav = preprocess_wav(a)
    out[f"prelen_{name[:4]}"] = np.array(len(wav))
    out[f"mel_{name[:4]}"] = raudio.wav_to_mel_spectrogram(wav)[:100]
    out[f"emb_{name[:4]}"] = enc.embed_utterance(wav)
np.savez_compressed("tests/data/voice/reference_resemblyzer.npz", **out)
