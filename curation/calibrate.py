"""SNR-estimator calibration on real recordings: the AVSpeech paper's Fig. 3(b), in real rooms.

Contract: :func:`calibrate_snr` builds mixtures from *real* audio folders at known true SNRs, scores
them with each estimator, chooses the keep threshold on one half of the speakers and reports it on
the other half, and writes ``snr_calibration.png`` / ``.csv`` / ``.md`` into ``out_dir``.
Deterministic for a seed. Command line: ``python -m curation.calibrate --speech DIR --noise KIND=PATH``
(see :func:`main`; ``--denoiser MODEL`` adds the denoiser estimator with a trained 1-speaker + noise
model package); without folders it runs on the bundled real assets (``avforge/assets/audio``).

Mixtures (``mixtures_per_bin`` per 1 dB bin of true SNR, ``-5..35`` dB, and per noise kind):

- **Speech**: one speaker's utterances (a folder of LibriSpeech ``SPEAKER-CHAPTER-UTT.flac``, CMU
  ARCTIC or any files; :func:`speaker_of`), looped to the window length, **convolved with a room
  impulse response** (``mixing.rirs.simulate_room``: pyroomacoustics image-source shoebox rooms,
  RT60 0.2-0.8 s; the talker is the source position nearest the microphone), plus a **room-tone
  floor** (pink noise, 45..60 dB under the speech) in every mixture: a recorded talk is never
  anechoic nor noiseless.
- **Noise kinds**: ``room_tone`` (the floor alone, at the target SNR: a quiet room), each ``--noise``
  kind (real recordings, a random window, looped if short), and ``babble`` (3..6 *other* speakers of
  the same speaker half, each through its own RIR of the same room, levels within ±3 dB).
- **studio**: the dry utterances as recorded (no RIR, nothing added): the "clean studio talk".
- Each mixture is a ``segment_s`` window (3..10 s, the curation windows) with 1 s of context either
  side; the VAD runs on the whole mixture and is cropped, as in the pipeline (``windows.py``).

**True SNR** (unchanged definition): the active-speech power of the *reverberant* speech window
(:func:`active_speech_power`: mean power of its 20 ms frames within 40 dB of the loudest one, a
simplified ITU-T P.56 level) over the mean power of everything added (scene noise + room tone) over
the same window. The reverberant tail is speech, not noise: a talk recorded in a room sounds so.

**Speaker halves**: speakers sorted, alternately ``tune`` / ``held_out`` (rooms alternate too); babble
talkers come from the target's half. The threshold is chosen on ``tune`` and every reported rate,
curve and bias is on ``held_out``.

**Threshold rule** (:func:`choose_threshold`): on ``tune``, *clean-real* = studio windows and
room-tone mixtures at true SNR >= ``clean_min_db`` (25 dB); *noisy-real* = babble / music / noise
mixtures at true SNR <= ``noisy_max_db`` (10 dB). ``T`` (0.5 dB grid) maximises the balanced
accuracy (mean of the clean keep rate and the noisy reject rate); among grid points within 1 % of the
best, the one whose 50 %-keep true SNR is nearest ``target_db`` (the paper's 17 dB).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.fft
import soundfile as sf
from scipy.signal import oaconvolve

from avforge.core import assets
from avforge.core.config import ConfigError
from avforge.core.media import SAMPLE_RATE_HZ
from avforge.core.signal import active_power, noise_gain_for_snr, resample
from curation.music import music_detector
from curation.snr import (
    SnrConfig,
    SnrEstimatorKind,
    VadGatedSnrEstimator,
    WadaSnrEstimator,
    make_estimator,
)
from curation.vad import SpeechActivity, VadConfig, detect_speech

ASSETS_DIR = assets.AUDIO_DIR
SPEECH_FILES = assets.speech_files()
"""The bundled real utterances: the speech used when no speech folder is given."""
NOISE_FILES = {
    "kitchen": (assets.NOISES["kitchen"].file,),
    "bike": (assets.NOISES["bike"].file,),
    "music": (assets.NOISES["guitar"].file,),
}
"""The bundled real noise and music, by kind: the noise used when none is given."""
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
ROOM_TONE, BABBLE, STUDIO = "room_tone", "babble", "studio"
TUNE, HELD_OUT = "tune", "held_out"
REPORT_AT_DB = (10.0, 17.0, 20.0, 25.0, 30.0)
"""True SNRs at which the Markdown table states each kind's bias (mean estimate - true)."""


@dataclass(frozen=True)
class Scorer:
    """An estimator under calibration: ``estimate(window, rate, activity)`` in dB.

    ``vad``: the VAD whose activity over the whole mixture is cropped to the window and passed (as the
    pipeline does); None: the scorer gets ``None`` (it needs no VAD, or runs its own).
    """

    estimate: Callable[[np.ndarray, int, SpeechActivity | None], float]
    vad: VadConfig | None = field(default_factory=VadConfig)


@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """What :func:`calibrate_snr` measured and wrote. Per-mixture arrays are ``(num_mixtures,)``."""

    kind: np.ndarray
    """Noise kind of each mixture (``room_tone``, a ``--noise`` kind, ``babble``, or ``studio``)."""
    split: np.ndarray
    """``tune`` or ``held_out``: the half of the speakers the mixture's talker belongs to."""
    speaker: np.ndarray
    true_db: np.ndarray
    """True SNR (NaN for ``studio``: nothing was added)."""
    rt60_s: np.ndarray
    """RT60 (Sabine) of the mixture's room; 0 for ``studio``."""
    estimates_db: dict[str, np.ndarray]
    bins_db: np.ndarray
    """(num_bins,) bin centres (true SNR, dB)."""
    kinds: tuple[str, ...]
    """The noise kinds of the curves, in order (``studio`` excluded)."""
    mean_db: dict[str, dict[str, np.ndarray]]
    """Scorer -> kind -> (num_bins,) mean estimate of the held-out mixtures of each bin."""
    std_db: dict[str, dict[str, np.ndarray]]
    thresholds_db: dict[str, float]
    """Scorer -> keep threshold chosen on the ``tune`` half."""
    rates: dict[str, dict[str, float]]
    """Scorer (and ``vad_gated + music``: both checks) -> condition -> held-out rate at the threshold: ``keep studio``, ``keep room_tone >= 25``,
    ``keep clean`` (both), ``reject <kind> <= 10`` per scene kind, ``reject noisy`` (all of them)."""
    true_at_threshold_db: dict[str, float]
    """Scorer -> true SNR at which the held-out mixtures (all kinds) are kept half of the time."""
    precision: dict[str, float]
    """Scorer -> fraction of the kept held-out mixtures whose true SNR is >= ``target_db``."""
    recall: dict[str, float]
    """Scorer -> fraction of the held-out mixtures with true SNR >= ``target_db`` that are kept."""
    png_path: Path
    csv_path: Path
    markdown_path: Path
    elapsed_s: float
    target_db: float = 17.0
    clean_min_db: float = 25.0
    noisy_max_db: float = 10.0
    sources: str = ""
    """One line naming the speech and noise the run used (for the Markdown header)."""
    music_scores: np.ndarray | None = None
    """Per mixture: the music check's score (curation.music), when scored."""
    music_threshold: float | None = None
    """The music threshold chosen on the ``tune`` half (:func:`choose_music_threshold`)."""
    eval_kinds: tuple[str, ...] = ()
    """Held-out noise kinds: reported, never used to choose."""


# --- loading ------------------------------------------------------------------------------------


def load_audio(path: Path) -> np.ndarray:
    """A recording as float32 mono at 16 kHz (channels averaged, resampled if needed)."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != SAMPLE_RATE_HZ:
        audio = resample(audio, rate, SAMPLE_RATE_HZ)
    return np.ascontiguousarray(audio, np.float32)


def audio_files(path: Path) -> list[Path]:
    """``path`` itself if it is a file, else the audio files under the folder (recursive, sorted)."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"no such file or folder: {path}")
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_SUFFIXES)}) under {path}")
    return files


_LIBRISPEECH = re.compile(r"^(\d+)-\d+-\d+$")
_ARCTIC = re.compile(r"^cmu_(?:us_)?arctic_(?:us_)?([a-z]+)_[ab]\d{4}$")


def speaker_of(path: Path) -> str:
    """Speaker of an utterance file: LibriSpeech ``SPEAKER-CHAPTER-UTT``, CMU ARCTIC ``..._aew_a0001``,
    else the file stem (one speaker per file)."""
    stem = Path(path).stem
    for pattern in (_LIBRISPEECH, _ARCTIC):
        match = pattern.match(stem)
        if match:
            return match.group(1)
    return stem


def split_speakers(speakers: Sequence[str]) -> dict[str, str]:
    """Speaker -> ``tune`` / ``held_out``: sorted (numerically where numeric), alternately."""
    key = lambda s: (0, int(s), "") if s.isdigit() else (1, 0, s)  # noqa: E731
    return {s: (TUNE, HELD_OUT)[i % 2] for i, s in enumerate(sorted(set(speakers), key=key))}


def load_speech(paths: Sequence[Path]) -> dict[str, np.ndarray]:
    """Speaker -> that speaker's utterances under ``paths``, concatenated (sorted by file)."""
    by_speaker: dict[str, list[np.ndarray]] = {}
    for path in paths:
        for f in audio_files(path):
            by_speaker.setdefault(speaker_of(f), []).append(load_audio(f))
    return {s: np.concatenate(parts) for s, parts in by_speaker.items()}


def load_noise(noise: Mapping[str, Sequence[Path]]) -> dict[str, list[np.ndarray]]:
    """Kind -> the recordings of that kind (every file under each path)."""
    out = {}
    for kind, paths in noise.items():
        if kind in (ROOM_TONE, BABBLE, STUDIO):
            raise ValueError(f"noise kind {kind!r} is reserved (made by the calibration itself)")
        out[kind] = [load_audio(f) for p in paths for f in audio_files(p)]
    return out


# --- signals --------------------------------------------------------------------------------------


def active_speech_power(speech: np.ndarray, sample_rate_hz: int, floor_db: float = -40.0) -> float:
    """Mean power of the 20 ms frames within ``-floor_db`` dB of the loudest one (active speech).

    :func:`avforge.core.signal.active_power` (mixing's level rule) with no silence floor: an all-zero
    window has power 0.0 here instead of raising.
    """
    power, _ = active_power(
        speech, frame_len=sample_rate_hz // 50, threshold_db=floor_db, floor_db=-math.inf
    )
    return power


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g * noise`` with ``g`` such that active-speech power / noise power = ``snr_db``
    (:func:`avforge.core.signal.noise_gain_for_snr`, 20 ms frames, 40 dB range)."""
    gain = noise_gain_for_snr(
        speech, noise, snr_db, frame_len=SAMPLE_RATE_HZ // 50, floor_db=-math.inf
    )
    return (speech + gain * noise).astype(np.float32)


def room_tone(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of pink (1/f power) noise above 20 Hz, unit mean power: a room's steady floor."""
    n_fft = scipy.fft.next_fast_len(n, real=True)
    spectrum = scipy.fft.rfft(rng.standard_normal(n_fft))
    freqs = scipy.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE_HZ)
    spectrum *= np.where(freqs >= 20.0, 1.0 / np.sqrt(np.maximum(freqs, 20.0)), 0.0)
    out = scipy.fft.irfft(spectrum, n_fft)[:n]
    return out / math.sqrt(float(np.mean(out**2)))


def _loop(audio: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` samples of ``audio`` looped, from a random offset."""
    start = int(rng.integers(audio.size))
    reps = -(-(start + n) // audio.size)
    return np.tile(audio, reps)[start : start + n].astype(np.float64)


def _reverberate(
    dry: np.ndarray, rir: np.ndarray | None, rng: np.random.Generator, n: int
) -> np.ndarray:
    """``n`` samples of ``dry`` (looped, random offset) through ``rir``, past its warm-up."""
    if rir is None:
        return _loop(dry, rng, n)
    return oaconvolve(_loop(dry, rng, n + rir.size - 1), rir, mode="valid")


@dataclass(frozen=True)
class Room:
    """A simulated room: the talker's RIR (the source nearest the microphone) and the others'."""

    rt60_s: float
    distance_m: float
    talker: np.ndarray
    others: tuple[np.ndarray, ...]


def simulate_rooms(
    count: int, seed: int, rt60_range_s: tuple[float, float], positions: int = 7
) -> list[Room]:
    """``count`` rooms from the project's RIR simulator (``mixing.rirs``), seeded."""
    from mixing.rirs import RirConfig, simulate_room

    cfg = RirConfig(
        n_rooms=count,
        sources_per_room=positions,
        rt60_s=rt60_range_s,
        min_source_distance_m=0.5,
        seed=seed,
    )
    rooms = []
    for index in range(count):
        sim = simulate_room(cfg, index)
        mic = np.asarray(sim.mic_m)
        dist = [float(np.linalg.norm(np.asarray(s) - mic)) for s in sim.sources_m]
        order = np.argsort(dist)
        rirs = [sim.rirs[k][0].astype(np.float64) for k in order]
        rooms.append(Room(sim.rt60_s, dist[order[0]], rirs[0], tuple(rirs[1:])))
    return rooms


@dataclass(frozen=True, eq=False)
class Mixture:
    """One calibration mixture: ``audio`` is the scored window plus context either side."""

    kind: str
    split: str
    speaker: str
    true_db: float
    rt60_s: float
    audio: np.ndarray
    start: int
    stop: int
    speech: np.ndarray
    """The (reverberant) speech alone, at the scale of ``audio``: ``audio - speech`` is what was added."""


def make_mixture(
    kind: str,
    true_db: float,
    talk: np.ndarray,
    room: Room | None,
    rng: np.random.Generator,
    *,
    segment_n: int,
    context_n: int,
    noise: Sequence[np.ndarray] = (),
    babble: Sequence[np.ndarray] = (),
    room_tone_db: tuple[float, float] = (45.0, 60.0),
    speaker: str = "",
    split: str = "",
) -> Mixture:
    """One mixture (module docstring). ``kind``: ``studio`` (dry, nothing added: ``true_db`` NaN),
    ``room_tone``, ``babble`` (``babble`` talks) or a noise kind (``noise`` recordings)."""
    n = segment_n + 2 * context_n
    win = slice(context_n, context_n + segment_n)
    if kind == STUDIO:
        audio = _loop(talk, rng, n)
        gain = _peak_gain(audio, rng)
        return Mixture(
            kind,
            split,
            speaker,
            math.nan,
            0.0,
            (audio * gain).astype(np.float32),
            win.start,
            win.stop,
            (audio * gain).astype(np.float32),
        )
    assert room is not None
    speech = _reverberate(talk, room.talker, rng, n)
    target_noise = active_speech_power(speech[win], SAMPLE_RATE_HZ) / 10 ** (true_db / 10)
    tone = room_tone(n, rng)
    if kind == ROOM_TONE:
        added = tone * math.sqrt(target_noise / float(np.mean(tone[win] ** 2)))
    else:
        if kind == BABBLE:
            picks = rng.choice(len(babble), size=min(len(babble), len(room.others)), replace=False)
            scene = np.zeros(n)
            for rir, j in zip(room.others, picks, strict=False):
                voice = _reverberate(babble[j], rir, rng, n)
                level = active_speech_power(voice[win], SAMPLE_RATE_HZ)
                scene += voice * 10 ** (rng.uniform(-3.0, 3.0) / 20) / math.sqrt(level)
        else:
            scene = _loop(noise[int(rng.integers(len(noise)))], rng, n)
        tone_power = target_noise / 10 ** (rng.uniform(*room_tone_db) / 10)
        tone *= math.sqrt(tone_power / float(np.mean(tone[win] ** 2)))
        # gain g so that mean((g * scene + tone)^2) over the window is exactly the target noise power
        a = float(np.mean(scene[win] ** 2))
        b = float(np.mean(scene[win] * tone[win]))
        c = float(np.mean(tone[win] ** 2)) - target_noise
        gain = (-b + math.sqrt(b * b - a * c)) / a
        added = gain * scene + tone
    peak = _peak_gain(speech + added, rng)
    return Mixture(
        kind,
        split,
        speaker,
        float(true_db),
        room.rt60_s,
        ((speech + added) * peak).astype(np.float32),
        win.start,
        win.stop,
        (speech * peak).astype(np.float32),
    )


def _peak_gain(audio: np.ndarray, rng: np.random.Generator) -> float:
    """Gain to a peak of -12..-1 dBFS, as recorded talks are (webrtcvad sees 16-bit PCM)."""
    peak = float(np.abs(audio).max())
    return 10 ** (rng.uniform(-12.0, -1.0) / 20) / peak if peak > 0 else 1.0


# --- calibration ----------------------------------------------------------------------------------


def default_scorers(silero: bool = False, denoiser: Path | None = None) -> dict[str, Scorer]:
    """The estimators calibrated by default.

    ``vad_gated`` (the default estimator with webrtcvad activity, as the pipeline runs it), ``wada``,
    ``vad_gated_previous`` (the estimator as it was before the real-room calibration, without the
    80 Hz high-pass; for the before/after table), with ``silero``, ``vad_gated_silero`` (activity
    from webrtcvad + silero, i.e. ``vad.use_silero: true``; ~0.1 s of CPU per mixture) and, with
    ``denoiser`` (a trained 1-speaker + noise model package), ``denoiser``: that model as curation
    runs it (``snr: {estimator: denoiser, model: PATH}``, webrtcvad activity). A bad model raises
    :class:`~avforge.core.config.ConfigError` before any mixture is made.
    """
    gated = VadGatedSnrEstimator(SnrConfig())
    previous = VadGatedSnrEstimator(SnrConfig(highpass_hz=0.0))
    wada = WadaSnrEstimator(SnrConfig(estimator=SnrEstimatorKind.WADA))
    out = {
        "vad_gated": Scorer(gated.estimate, VadConfig()),
        "wada": Scorer(wada.estimate, None),
        "vad_gated_previous": Scorer(previous.estimate, VadConfig()),
    }
    if silero:
        out["vad_gated_silero"] = Scorer(gated.estimate, VadConfig(use_silero=True))
    if denoiser is not None:
        try:
            cfg = SnrConfig(estimator=SnrEstimatorKind.DENOISER, model=denoiser)
        except ConfigError as exc:
            raise ConfigError(exc.detail, "--denoiser") from None
        out["denoiser"] = Scorer(make_estimator(cfg).estimate, VadConfig())
    return out


def plan_mixtures(
    speech: Mapping[str, np.ndarray],
    noise: Mapping[str, Sequence[np.ndarray]],
    rooms: Sequence[Room],
    *,
    mixtures_per_bin: int,
    seed: int,
    snr_range_db: tuple[int, int],
    segment_s: tuple[float, float],
    babble_talkers: tuple[int, int],
    room_tone_db: tuple[float, float],
    studio_per_speaker: int,
    context_s: float = 1.0,
) -> Iterator[Mixture]:
    """Yield every :class:`Mixture` of a run, in a fixed order (kinds, then bins); seeded per mixture."""
    halves = split_speakers(list(speech))
    members = {h: [s for s in speech if halves[s] == h] for h in (TUNE, HELD_OUT)}
    room_half = {h: [r for i, r in enumerate(rooms) if i % 2 == k] for k, h in enumerate(members)}
    for h in (TUNE, HELD_OUT):
        room_half[h] = room_half[h] or list(rooms)
    kinds = [ROOM_TONE, *noise]
    if babble_talkers[1] > 0 and min(len(m) for m in members.values()) > 1:
        kinds.append(BABBLE)
    bins = np.arange(snr_range_db[0], snr_range_db[1] + 1, dtype=np.float64)
    context_n = round(context_s * SAMPLE_RATE_HZ)
    order = np.random.default_rng(np.random.SeedSequence([seed, 7919]))
    queue = {h: [m[j] for j in order.permutation(len(m))] for h, m in members.items()}
    cycles = {h: 0 for h in members}
    for k, kind in enumerate([STUDIO, *kinds]):
        count = len(speech) * studio_per_speaker if kind == STUDIO else bins.size * mixtures_per_bin
        for i in range(count):
            rng = np.random.default_rng(np.random.SeedSequence([seed, k, i]))
            if kind == STUDIO:
                speaker = sorted(speech)[i % len(speech)]
                half = halves[speaker]
                true_db = math.nan
            else:
                half = (TUNE, HELD_OUT)[i % 2]
                speaker = queue[half][cycles[half] % len(queue[half])]
                cycles[half] += 1
                true_db = bins[i // mixtures_per_bin] + rng.uniform(-0.5, 0.5)
            others = [speech[s] for s in members[half] if s != speaker]
            talkers = min(int(rng.integers(babble_talkers[0], babble_talkers[1] + 1)), len(others))
            babble = [others[j] for j in rng.choice(len(others), talkers, replace=False)]
            yield make_mixture(
                kind,
                true_db,
                speech[speaker],
                room_half[half][int(rng.integers(len(room_half[half])))],
                rng,
                segment_n=round(rng.uniform(*segment_s) * SAMPLE_RATE_HZ),
                context_n=context_n,
                noise=noise.get(kind, ()),
                babble=babble if kind == BABBLE else (),
                room_tone_db=room_tone_db,
                speaker=speaker,
                split=half,
            )


def score_mixture(mixture: Mixture, scorers: Mapping[str, Scorer]) -> dict[str, float]:
    """Each scorer's estimate of the mixture's window, with the VAD run on the whole mixture."""
    rate = SAMPLE_RATE_HZ
    start_s, end_s = mixture.start / rate, mixture.stop / rate
    window = mixture.audio[mixture.start : mixture.stop]
    activity: dict[VadConfig, SpeechActivity] = {}
    out = {}
    for name, scorer in scorers.items():
        crop = None
        if scorer.vad is not None:
            if scorer.vad not in activity:
                activity[scorer.vad] = detect_speech(mixture.audio, rate, scorer.vad)
            crop = activity[scorer.vad].crop(start_s, end_s)
        out[name] = float(scorer.estimate(window, rate, crop))
    return out


def keep_half_true_db(true_db: np.ndarray, kept: np.ndarray, bins_db: np.ndarray) -> float:
    """True SNR at which the keep rate per 1 dB bin first reaches 50 % (linear between bins)."""
    rate = np.array(
        [
            kept[np.abs(true_db - b) <= 0.5].mean()
            if np.any(np.abs(true_db - b) <= 0.5)
            else np.nan
            for b in bins_db
        ]
    )
    ok = ~np.isnan(rate)
    bins_db, rate = bins_db[ok], rate[ok]
    # the last crossing from below: noisy bins at the low end may be kept by chance
    above = rate >= 0.5
    if above.all():
        return float(bins_db[0])
    if not above.any():
        return math.inf
    last_below = int(np.flatnonzero(~above)[-1])
    if last_below == rate.size - 1:
        return math.inf
    r0, r1 = rate[last_below], rate[last_below + 1]
    b0 = bins_db[last_below]
    return float(b0 + (0.5 - r0) / (r1 - r0))


def choose_threshold(
    keep_db: np.ndarray,
    reject_db: np.ndarray,
    *,
    true_db: np.ndarray | None = None,
    estimate_db: np.ndarray | None = None,
    bins_db: np.ndarray | None = None,
    target_db: float = 17.0,
    tolerance: float = 0.01,
    grid_db: np.ndarray | None = None,
) -> float:
    """Keep threshold separating estimates of ``keep_db`` (clean) from ``reject_db`` (noisy).

    Maximises the balanced accuracy ``(mean(keep >= T) + mean(reject < T)) / 2`` over ``grid_db``
    (default -20..60 dB in 0.5 dB steps). Ties within ``tolerance`` of the best: if the curve data
    (``true_db``, ``estimate_db``, ``bins_db``) is given, the ``T`` whose 50 %-keep true SNR is nearest
    ``target_db``; else the middle of the tied range.
    """
    grid = np.arange(-20.0, 60.5, 0.5) if grid_db is None else np.asarray(grid_db, np.float64)
    keep_db, reject_db = np.asarray(keep_db), np.asarray(reject_db)
    score = np.array(
        [
            0.5 * ((keep_db >= t).mean() if keep_db.size else 1.0)
            + 0.5 * ((reject_db < t).mean() if reject_db.size else 1.0)
            for t in grid
        ]
    )
    tied = grid[score >= score.max() - tolerance]
    if true_db is None or estimate_db is None or bins_db is None:
        return float(tied[tied.size // 2])
    cross = np.array([keep_half_true_db(true_db, estimate_db >= t, bins_db) for t in tied])
    return float(tied[int(np.argmin(np.abs(cross - target_db)))])


PRIMARY = "vad_gated"
"""The default estimator: the music threshold is chosen together with its threshold."""
MUSIC_GRID = np.round(np.arange(0.005, 0.5001, 0.005), 3)
MUSIC = "music"
"""Noise kinds whose name starts with this are music: the music threshold is chosen on them."""


def with_music(name: str) -> str:
    """Report name of estimator ``name`` combined with the music check."""
    return f"{name} + music"


def choose_music_threshold(
    music: np.ndarray,
    snr_kept: np.ndarray,
    clean: np.ndarray,
    noisy: np.ndarray,
    *,
    tolerance: float = 0.005,
    grid: np.ndarray = MUSIC_GRID,
) -> float:
    """The music threshold ``M`` for the combined rule "keep when the SNR check keeps and the music
    score is below ``M``": the best balanced accuracy (mean of the ``clean`` keep rate and the
    ``noisy`` reject rate, over windows flagged in those boolean masks; calibrate_snr passes the
    music kinds at true SNR <= 10 dB as ``noisy``); among thresholds within ``tolerance`` of the best,
    the highest (it rejects the fewest windows that are not music)."""
    score = np.array(
        [
            0.5 * _rate(snr_kept[clean] & (music[clean] < m))
            + 0.5 * _rate(~(snr_kept[noisy] & (music[noisy] < m)))
            for m in grid
        ]
    )
    return float(grid[score >= np.nanmax(score) - tolerance].max())


def calibrate_snr(
    out_dir: Path,
    mixtures_per_bin: int = 30,
    seed: int = 0,
    *,
    speech: Sequence[Path] | None = None,
    noise: Mapping[str, Sequence[Path]] | None = None,
    snr_range_db: tuple[int, int] = (-5, 35),
    segment_s: tuple[float, float] = (3.0, 10.0),
    rt60_range_s: tuple[float, float] = (0.2, 0.8),
    num_rooms: int = 24,
    babble_talkers: tuple[int, int] = (3, 6),
    room_tone_db: tuple[float, float] = (45.0, 60.0),
    studio_per_speaker: int = 2,
    target_db: float = 17.0,
    clean_min_db: float = 25.0,
    noisy_max_db: float = 10.0,
    scorers: Mapping[str, Scorer] | None = None,
    progress: Callable[[int], None] | None = None,
    eval_noise: Mapping[str, Sequence[Path]] | None = None,
    music: bool = True,
) -> CalibrationResult:
    """Run the calibration (module docstring); write the PNG, CSV and Markdown into ``out_dir``.

    ``speech``: files/folders of real utterances (default: the bundled ones); ``noise``: kind ->
    files/folders of real noise or music (default: the bundled kitchen, bike and guitar recordings).
    ``scorers``: default :func:`default_scorers` (without silero). ``progress(n)`` is called after
    each scored window. ``eval_noise``: more kinds of real noise or music, mixed and reported like
    the others but used in no threshold choice (held-out noise). ``music``: also score every window
    with the music check (curation.music) and choose its threshold: :func:`choose_music_threshold`,
    combined with the ``vad_gated`` threshold; reported as ``vad_gated + music``.

    Example::

        result = calibrate_snr(
            Path("docs/snr_calibration"),
            speech=[Path("librispeech-train-clean-100")],
            noise={"kitchen": [Path("doing_the_dishes.wav")], "music": [Path("guitar_16k.wav")]},
        )
        result.thresholds_db["vad_gated"]      # the default keep threshold of that estimator
    """
    started = time.perf_counter()
    scorers = dict(scorers) if scorers is not None else default_scorers()
    speech_paths = list(speech) if speech is not None else [ASSETS_DIR / f for f in SPEECH_FILES]
    noise_paths = (
        {k: list(v) for k, v in noise.items()}
        if noise is not None
        else {k: [ASSETS_DIR / f for f in files] for k, files in NOISE_FILES.items()}
    )
    talks = load_speech(speech_paths)
    if len(talks) < 2:
        raise ValueError(f"need at least 2 speakers to hold some out, got {len(talks)}")
    eval_paths = {k: list(v) for k, v in (eval_noise or {}).items()}
    clash = sorted(set(eval_paths) & (set(noise_paths) | {ROOM_TONE, BABBLE, STUDIO}))
    if clash:
        raise ValueError(f"held-out noise kinds must be new kind names, not {', '.join(clash)}")
    noises = load_noise({**noise_paths, **eval_paths})
    rooms = simulate_rooms(num_rooms, seed, rt60_range_s)
    bins = np.arange(snr_range_db[0], snr_range_db[1] + 1, dtype=np.float64)
    rows: list[tuple[str, str, str, float, float]] = []
    est: dict[str, list[float]] = {name: [] for name in scorers}
    plan = plan_mixtures(
        talks,
        noises,
        rooms,
        mixtures_per_bin=mixtures_per_bin,
        seed=seed,
        snr_range_db=snr_range_db,
        segment_s=segment_s,
        babble_talkers=babble_talkers,
        room_tone_db=room_tone_db,
        studio_per_speaker=studio_per_speaker,
    )
    detector = music_detector() if music else None
    music_scores: list[float] = []
    for i, mixture in enumerate(plan):
        rows.append((mixture.kind, mixture.split, mixture.speaker, mixture.true_db, mixture.rt60_s))
        for name, value in score_mixture(mixture, scorers).items():
            est[name].append(value)
        if detector is not None:
            music_scores.append(detector.score(mixture.audio[mixture.start : mixture.stop]))
        if progress is not None:
            progress(i + 1)
    kind = np.array([r[0] for r in rows])
    split = np.array([r[1] for r in rows])
    speaker = np.array([r[2] for r in rows])
    true_db = np.array([r[3] for r in rows], np.float64)
    rt60 = np.array([r[4] for r in rows], np.float64)
    estimates = {name: np.asarray(v, np.float64) for name, v in est.items()}
    kinds = tuple(dict.fromkeys(k for k in kind if k != STUDIO))
    scene = np.isin(kind, [k for k in kinds if k != ROOM_TONE])
    clean = (kind == STUDIO) | ((kind == ROOM_TONE) & (true_db >= clean_min_db))
    noisy_any = scene & (true_db <= noisy_max_db)
    noisy = noisy_any & ~np.isin(kind, list(eval_paths))  # held-out noise kinds choose nothing
    tune, held = split == TUNE, split == HELD_OUT
    thresholds: dict[str, float] = {}
    kept_by: dict[str, np.ndarray] = {}
    mixed = (kind != STUDIO) & ~np.isin(kind, list(eval_paths))
    mean: dict[str, dict[str, np.ndarray]] = {}
    std: dict[str, dict[str, np.ndarray]] = {}
    for name, e in estimates.items():
        curve = tune & mixed
        thresholds[name] = choose_threshold(
            e[clean & tune],
            e[noisy & tune],
            true_db=true_db[curve],
            estimate_db=e[curve],
            bins_db=bins,
            target_db=target_db,
        )
        kept_by[name] = e >= thresholds[name]
        mean[name], std[name] = {}, {}
        for k in kinds:
            m, s = [], []
            for b in bins:
                sel = held & (kind == k) & (np.abs(true_db - b) <= 0.5)
                m.append(e[sel].mean() if sel.any() else math.nan)
                s.append(e[sel].std() if sel.any() else math.nan)
            mean[name][k], std[name][k] = np.array(m), np.array(s)
    music_arr = np.asarray(music_scores, np.float64) if detector is not None else None
    music_threshold = None
    noisy_music = noisy & np.char.startswith(kind.astype(str), MUSIC)
    if music_arr is not None and PRIMARY in kept_by and (noisy_music & tune).any():
        music_threshold = choose_music_threshold(
            music_arr[tune], kept_by[PRIMARY][tune], clean[tune], noisy_music[tune]
        )
        kept_by[with_music(PRIMARY)] = kept_by[PRIMARY] & (music_arr < music_threshold)
    rates, true_at, precision, recall = {}, {}, {}, {}
    good = true_db >= target_db
    for name, kept in kept_by.items():
        r = {
            "keep studio": _rate(kept[held & (kind == STUDIO)]),
            f"keep room_tone >= {clean_min_db:g}": _rate(
                kept[held & (kind == ROOM_TONE) & (true_db >= clean_min_db)]
            ),
            "keep clean": _rate(kept[held & clean]),
        }
        for k in kinds:
            if k != ROOM_TONE:
                r[f"reject {k} <= {noisy_max_db:g}"] = _rate(~kept[held & noisy_any & (kind == k)])
        r["reject noisy"] = _rate(~kept[held & noisy])
        if eval_paths:
            r[f"reject held-out noise <= {noisy_max_db:g}"] = _rate(
                ~kept[held & noisy_any & np.isin(kind, list(eval_paths))]
            )
        rates[name] = r
        true_at[name] = keep_half_true_db(true_db[held & mixed], kept[held & mixed], bins)
        precision[name] = _rate(good[held & mixed & kept])
        recall[name] = _rate(kept[held & mixed & good])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_speakers = len(talks)
    sources = (
        f"speech: {n_speakers} speakers ({sum(1 for h in split_speakers(list(talks)).values() if h == HELD_OUT)}"
        f" held out) from {', '.join(str(p) for p in speech_paths[:3])}"
        f"{' ...' if len(speech_paths) > 3 else ''}; noise: "
        + "; ".join(f"{k} = {', '.join(Path(p).name for p in v)}" for k, v in noise_paths.items())
        + f"; {len(rooms)} rooms, RT60 {rt60_range_s[0]:g}-{rt60_range_s[1]:g} s"
    )
    result = CalibrationResult(
        kind=kind,
        split=split,
        speaker=speaker,
        true_db=true_db,
        rt60_s=rt60,
        estimates_db=estimates,
        bins_db=bins,
        kinds=kinds,
        mean_db=mean,
        std_db=std,
        thresholds_db=thresholds,
        rates=rates,
        true_at_threshold_db=true_at,
        precision=precision,
        recall=recall,
        png_path=out_dir / "snr_calibration.png",
        csv_path=out_dir / "snr_calibration.csv",
        markdown_path=out_dir / "snr_calibration.md",
        elapsed_s=time.perf_counter() - started,
        target_db=target_db,
        clean_min_db=clean_min_db,
        noisy_max_db=noisy_max_db,
        sources=sources,
        music_scores=music_arr,
        music_threshold=music_threshold,
        eval_kinds=tuple(eval_paths),
    )
    _write_csv(result)
    _write_plot(result)
    _write_markdown(result, mixtures_per_bin, seed, segment_s)
    return result


def _rate(flags: np.ndarray) -> float:
    return float(flags.mean()) if flags.size else math.nan


def _keep_rate(result: CalibrationResult, name: str, kind: str) -> np.ndarray:
    e, t = result.estimates_db[name], result.true_db
    held = (result.split == HELD_OUT) & (result.kind == kind)
    out = []
    for b in result.bins_db:
        sel = held & (np.abs(t - b) <= 0.5)
        out.append((e[sel] >= result.thresholds_db[name]).mean() if sel.any() else math.nan)
    return np.array(out)


def bias_at(result: CalibrationResult, name: str, kind: str, true_db: float) -> float:
    """Held-out mean estimate - true SNR of ``kind`` in the 1 dB bin at ``true_db``."""
    sel = (
        (result.split == HELD_OUT)
        & (result.kind == kind)
        & (np.abs(result.true_db - true_db) <= 0.5)
    )
    if not sel.any():
        return math.nan
    return float(np.mean(result.estimates_db[name][sel] - result.true_db[sel]))


def _write_csv(result: CalibrationResult) -> None:
    with open(result.csv_path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["estimator", "kind", "true_snr_db", "n", "mean_db", "std_db", "keep_rate"])
        for name in result.estimates_db:
            for kind in result.kinds:
                keep = _keep_rate(result, name, kind)
                held = (result.split == HELD_OUT) & (result.kind == kind)
                for b, centre in enumerate(result.bins_db):
                    n = int(np.sum(held & (np.abs(result.true_db - centre) <= 0.5)))
                    writer.writerow(
                        [
                            name,
                            kind,
                            f"{centre:.0f}",
                            n,
                            f"{result.mean_db[name][kind][b]:.2f}",
                            f"{result.std_db[name][kind][b]:.2f}",
                            f"{keep[b]:.3f}",
                        ]
                    )


def _write_plot(result: CalibrationResult) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result.estimates_db)
    kinds = list(result.kinds)
    fig, axes = plt.subplots(
        len(names), len(kinds), figsize=(3.3 * len(kinds), 3.3 * len(names)), squeeze=False
    )
    lo, hi = result.bins_db[0], result.bins_db[-1]
    for row, name in enumerate(names):
        for col, kind in enumerate(kinds):
            ax = axes[row][col]
            m, s = result.mean_db[name][kind], result.std_db[name][kind]
            ax.plot([lo, hi], [lo, hi], color="0.6", ls="--", lw=1, label="identity")
            ax.fill_between(result.bins_db, m - s, m + s, alpha=0.3, color="C0", label="±1 std")
            ax.plot(result.bins_db, m, color="C0", lw=2, label="mean estimate")
            ax.axvline(result.target_db, color="C3", lw=1, label=f"true {result.target_db:g} dB")
            ax.axhline(
                result.thresholds_db[name],
                color="C2",
                lw=1,
                label=f"threshold {result.thresholds_db[name]:g} dB",
            )
            ax.set_title(f"{name} / {kind}", fontsize=10)
            ax.set_xlim(lo, hi)
            ax.set_ylim(-20, 60)
            ax.grid(alpha=0.3)
            if row == len(names) - 1:
                ax.set_xlabel("true SNR (dB, active speech)")
            if col == 0:
                ax.set_ylabel("estimated SNR (dB)")
        axes[row][0].legend(loc="upper left", fontsize=7)
    fig.suptitle(
        "Speech-SNR estimate vs true SNR on held-out speakers, reverberant real speech "
        "(mean ± 1 std per 1 dB bin)",
        fontsize=11,
    )
    fig.tight_layout()
    fig.savefig(result.png_path, dpi=65)
    plt.close(fig)


def _fmt(value: float | None, spec: str = ".3f") -> str:
    return "n/a" if value is None or math.isnan(value) else format(value, spec)


def _write_markdown(
    result: CalibrationResult,
    mixtures_per_bin: int,
    seed: int,
    segment_s: tuple[float, float],
) -> None:
    names = list(result.estimates_db)
    held = result.split == HELD_OUT
    studio = result.kind == STUDIO
    lines = [
        "# SNR-estimator calibration (generated by `python -m curation.calibrate`)",
        "",
        f"{result.true_db.size} windows ({int(np.sum(~studio))} mixtures: {mixtures_per_bin} per "
        f"1 dB bin and kind, {int(np.sum(studio))} dry studio windows), "
        f"{segment_s[0]:g}-{segment_s[1]:g} s each, seed {seed}; {result.sources}. "
        f"Threshold chosen on the `tune` speakers; every number below is on the "
        f"{int(np.sum(held))} `held_out` windows. Run time {result.elapsed_s:.0f} s.",
        "",
        "| estimator | threshold (dB) | keep clean | reject noisy "
        f"| true SNR kept half the time (dB) | precision (true >= {result.target_db:g} dB among "
        f"kept) | recall (kept among true >= {result.target_db:g} dB) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in result.rates:
        r = result.rates[name]
        lines.append(
            f"| {name} | {_threshold_text(result, name)} | {_fmt(r['keep clean'])} "
            f"| {_fmt(r['reject noisy'])} | {_fmt(result.true_at_threshold_db[name], '.1f')} "
            f"| {_fmt(result.precision[name])} | {_fmt(result.recall[name])} |"
        )
    conditions = list(result.rates[names[0]])
    lines += [
        "",
        f"Held-out rates per condition at each threshold (clean: dry studio windows, room tone at "
        f"true SNR >= {result.clean_min_db:g} dB; noisy: true SNR <= {result.noisy_max_db:g} dB).",
        "",
        "| estimator | " + " | ".join(conditions) + " |",
        "| --- |" + " --- |" * len(conditions),
    ]
    for name in result.rates:
        cells = [_fmt(result.rates[name][c]) for c in conditions]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Bias (held-out mean estimate - true SNR, dB) per kind at true SNRs "
        + ", ".join(f"{t:g}" for t in REPORT_AT_DB)
        + " dB.",
        "",
        "| estimator | kind | " + " | ".join(f"{t:g} dB" for t in REPORT_AT_DB) + " |",
        "| --- | --- |" + " --- |" * len(REPORT_AT_DB),
    ]
    for name in names:
        for kind in result.kinds:
            cells = [_fmt(bias_at(result, name, kind, t), "+.1f") for t in REPORT_AT_DB]
            lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    for name in names:
        e = result.estimates_db[name][held & studio]
        if e.size:
            lines.append("")
            lines.append(
                f"{name} on dry studio windows: median {np.median(e):.1f} dB, "
                f"5th percentile {np.percentile(e, 5):.1f} dB, minimum {e.min():.1f} dB."
            )
    lines += [
        "",
        "Per bin (held-out): mean ± std of the estimate (dB) and the fraction kept, "
        f"`{names[0]}`, by kind.",
        "",
        "| true SNR (dB) | " + " | ".join(result.kinds) + " |",
        "| --- |" + " --- |" * len(result.kinds),
    ]
    keep = {k: _keep_rate(result, names[0], k) for k in result.kinds}
    for b, centre in enumerate(result.bins_db):
        cells = [
            f"{_fmt(result.mean_db[names[0]][k][b], '.1f')} ± "
            f"{_fmt(result.std_db[names[0]][k][b], '.1f')} (kept {_fmt(keep[k][b], '.2f')})"
            for k in result.kinds
        ]
        lines.append(f"| {centre:.0f} | " + " | ".join(cells) + " |")
    lines += _music_lines(result)
    result.markdown_path.write_text("\n".join(lines) + "\n")


def _threshold_text(result: CalibrationResult, name: str) -> str:
    base = name.removesuffix(" + music")
    text = f"{result.thresholds_db[base]:g}"
    if name != base and result.music_threshold is not None:
        text += f", music < {result.music_threshold:g}"
    return text


def _music_lines(result: CalibrationResult) -> list[str]:
    """The music score per kind and true-SNR range (held-out), when scored."""
    if result.music_scores is None:
        return []
    ranges = [(-5.5, 5.5), (5.5, 10.5), (10.5, 15.5), (15.5, 20.5), (20.5, 25.5), (25.5, 35.5)]
    held = result.split == HELD_OUT
    lines = [
        "",
        "Music score (YAMNet's mean `Music` probability, curation.music) of the held-out windows: "
        "median [90th percentile] per kind and true SNR"
        + (f"; held-out noise kinds: {', '.join(result.eval_kinds)}" if result.eval_kinds else "")
        + f". Threshold {_fmt(result.music_threshold, 'g')}.",
        "",
        "| kind | " + " | ".join(f"{a + 0.5:g} to {b - 0.5:g} dB" for a, b in ranges) + " |",
        "| --- |" + " --- |" * len(ranges),
    ]
    for kind in result.kinds:
        cells = []
        for a, b in ranges:
            sel = held & (result.kind == kind) & (result.true_db > a) & (result.true_db <= b)
            v = result.music_scores[sel]
            cells.append(f"{np.median(v):.3f} [{np.percentile(v, 90):.3f}]" if v.size else "n/a")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    v = result.music_scores[held & (result.kind == STUDIO)]
    if v.size:
        lines += [
            "",
            f"On dry studio windows: median {np.median(v):.4f}, 99th percentile "
            f"{np.percentile(v, 99):.4f}, maximum {v.max():.4f}.",
        ]
    return lines


# --- command line ---------------------------------------------------------------------------------


def parse_noise(values: Sequence[str]) -> dict[str, list[Path]]:
    """``["kitchen=a.wav", "music=dir/"]`` -> ``{"kitchen": [Path("a.wav")], "music": [Path("dir")]}``."""
    out: dict[str, list[Path]] = {}
    for value in values:
        kind, sep, path = value.partition("=")
        if not sep or not kind or not path:
            raise argparse.ArgumentTypeError(f"--noise wants KIND=PATH, got {value!r}")
        out.setdefault(kind, []).append(Path(path))
    return out


def _print_progress(done: int) -> None:
    if done % 500 == 0:
        print(f"{done} windows scored", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m curation.calibrate --speech DIR [--noise KIND=PATH ...] [--out DIR]``."""
    parser = argparse.ArgumentParser(
        prog="python -m curation.calibrate",
        description="Calibrate the speech-SNR estimators on real speech, noise and simulated rooms.",
    )
    parser.add_argument(
        "--speech",
        type=Path,
        action="append",
        help="folder or file of real utterances (repeatable; default: the bundled ones)",
    )
    parser.add_argument(
        "--noise",
        action="append",
        default=[],
        metavar="KIND=PATH",
        help="real noise or music: a kind name and a file or folder (repeatable; default: bundled)",
    )
    parser.add_argument(
        "--eval-noise",
        action="append",
        default=[],
        metavar="KIND=PATH",
        help="held-out noise or music: mixed and reported, never used to choose (repeatable)",
    )
    parser.add_argument(
        "--no-music", action="store_true", help="do not score or calibrate the music check"
    )
    parser.add_argument("--out", type=Path, default=Path("docs/snr_calibration"))
    parser.add_argument("--mixtures-per-bin", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rooms", type=int, default=24)
    parser.add_argument(
        "--snr-range", type=int, nargs=2, default=(-5, 35), metavar=("LOW", "HIGH"), help="dB"
    )
    parser.add_argument(
        "--silero", action="store_true", help="also calibrate with silero's VAD opinion (slower)"
    )
    parser.add_argument(
        "--denoiser",
        type=Path,
        metavar="MODEL",
        help="also calibrate the denoiser estimator with this 1-speaker + noise model package",
    )
    args = parser.parse_args(argv)
    try:
        scorers = default_scorers(silero=args.silero, denoiser=args.denoiser)
    except ConfigError as exc:
        parser.error(str(exc))
    try:
        noise = parse_noise(args.noise) or None
        eval_noise = parse_noise(args.eval_noise)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    result = calibrate_snr(
        args.out,
        mixtures_per_bin=args.mixtures_per_bin,
        seed=args.seed,
        speech=args.speech,
        noise=noise,
        num_rooms=args.rooms,
        snr_range_db=(args.snr_range[0], args.snr_range[1]),
        scorers=scorers,
        progress=_print_progress,
        eval_noise=eval_noise,
        music=not args.no_music,
    )
    for name, r in result.rates.items():
        print(
            f"{name}: threshold {_threshold_text(result, name)}, held-out keep clean "
            f"{r['keep clean']:.3f}, reject noisy {r['reject noisy']:.3f}"
        )
    print(f"wrote {result.png_path}, {result.csv_path}, {result.markdown_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
