"""Recipe sampling: which clips, noise and room go together, as :class:`manifests.MixtureSpec` rows.

Input: the clips, noises and rirs manifests of a corpus (filtered to ``config.split``) and a
:class:`mixing.config.MixingConfig`. Output: one recipe per (epoch, index); nothing is rendered here.

Determinism: every random draw of recipe ``index`` in ``epoch`` comes from
``numpy.random.default_rng(SeedSequence([seed, epoch, index]))``, so a recipe depends only on the
config, the manifests and those three numbers, never on the order items are drawn in, on the worker
that draws it, or on global random state. The recipe records the derived seed.

Rules: the speakers of a recipe come from different sources, and from different speakers when
``speaker_id`` is known (a clip without one counts as its own source's speaker), except that with
probability ``p_same_speaker`` an interferer is another clip of the reference's speaker (from a
different source when one exists). Crop offsets and start times are multiples of 40 ms. The reference
speaker (index 0) starts at 0; interferer ``i`` starts at ``(1 - overlap_i) · duration``. Gains: the
reference gets a gain from ``reference_gain_db_range`` against its recorded level; interferer ``i``
gets ``gains_db[i] = -SIR_i`` relative to the reference, both measured on active speech. Reverberant
recipes take every speaker (and optionally the noise) from different source positions of one room.

Failure modes: a split with too few distinct sources/speakers, no noise or no RIR where the config
asks for one raises :class:`SamplerError` when the sampler is built, not mid-training.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from manifests import read_clips, read_noises, read_rirs
from manifests.schema import MixtureSpec, Split
from mixing.config import MixingConfig, NoiseMode

FRAME_S = 0.04
MAX_TRIES = 64


class SamplerError(ValueError):
    """The manifests cannot satisfy the mixing config (too few sources, no noise, no RIR)."""


def _entropy(base_seed: int, epoch: int, index: int, attempt: int) -> list[int]:
    return [base_seed, epoch, index] + ([attempt] if attempt else [])


def derive_seed(base_seed: int, epoch: int, index: int, attempt: int = 0) -> int:
    """A 63-bit seed from (base seed, epoch, index[, attempt]) through ``numpy.random.SeedSequence``."""
    entropy = _entropy(base_seed, epoch, index, attempt)
    state = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & (2**63 - 1)


def recipe_rng(base_seed: int, epoch: int, index: int, attempt: int = 0) -> np.random.Generator:
    """The generator of recipe ``index`` of ``epoch`` (``attempt`` > 0: a redraw, see
    :func:`sample_recipe`)."""
    return np.random.default_rng(np.random.SeedSequence(_entropy(base_seed, epoch, index, attempt)))


def _frames(time_s: float) -> int:
    return round(time_s / FRAME_S)


def _seconds(frames: int) -> float:
    return round(frames * FRAME_S, 6)


def _by_split(table: pa.Table, split: Split) -> pa.Table:
    return table.filter(pc.equal(table.column("split").cast(pa.string()), split.value))


@dataclass(frozen=True)
class RecipePools:
    """What recipes are drawn from: clips, noises and rooms of one split (plain lists, cheap to pickle)."""

    clip_ids: list[str]
    source_ids: list[str]
    speaker_ids: list[str]
    clip_frames: list[int]
    """Clip length in whole 40 ms frames."""
    noise_ids: list[str]
    noise_frames: list[int]
    rooms: dict[str, list[str]]
    """room_id -> rir ids (one per source position), sorted."""

    @classmethod
    def from_tables(
        cls, clips: pa.Table, noises: pa.Table, rirs: pa.Table, split: Split
    ) -> RecipePools:
        """Pools of ``split`` from manifest tables."""
        c = _by_split(clips, split).sort_by("clip_id").to_pydict()
        n = _by_split(noises, split).sort_by("noise_id").to_pydict()
        r = _by_split(rirs, split).sort_by("rir_id").to_pydict()
        rooms: dict[str, list[str]] = defaultdict(list)
        for rir_id, room_id in zip(r["rir_id"], r["room_id"], strict=True):
            rooms[room_id].append(rir_id)
        frames = [
            int(ns * 25 // sr) for ns, sr in zip(c["num_samples"], c["sample_rate_hz"], strict=True)
        ]
        return cls(
            clip_ids=c["clip_id"],
            source_ids=c["source_id"],
            speaker_ids=[
                spk or f"source:{src}"
                for spk, src in zip(c["speaker_id"], c["source_id"], strict=True)
            ],
            clip_frames=frames,
            noise_ids=n["noise_id"],
            noise_frames=[
                max(1, int(ns * 25 // sr))
                for ns, sr in zip(n["num_samples"], n["sample_rate_hz"], strict=True)
            ],
            rooms=dict(sorted(rooms.items())),
        )

    @classmethod
    def from_corpus(cls, corpus: str, split: Split) -> RecipePools:
        """Pools of ``split`` read from the manifests of ``corpus``."""
        corpus = str(corpus)
        return cls.from_tables(read_clips(corpus), read_noises(corpus), read_rirs(corpus), split)


def check_pools(pools: RecipePools, config: MixingConfig) -> None:
    """Raise :class:`SamplerError` unless ``pools`` can serve every recipe ``config`` may draw."""
    where = f"split {config.split.value!r}"
    n = config.n_speakers or 1
    if not pools.clip_ids:
        raise SamplerError(f"no clip in {where}")
    distinct = min(len(set(pools.source_ids)), len(set(pools.speaker_ids)))
    if distinct < n:
        raise SamplerError(
            f"{n} speakers need {n} different sources and speakers; {where} has only {distinct}"
        )
    if config.p_noise and not pools.noise_ids:
        raise SamplerError(f"p_noise is {config.p_noise} but there is no noise in {where}")
    if config.p_reverb and not pools.rooms:
        raise SamplerError(f"p_reverb is {config.p_reverb} but there is no RIR in {where}")


def _compatible(pools: RecipePools, chosen: list[int], clip: int, *, same_speaker: bool) -> bool:
    """Whether ``clip`` may join ``chosen`` (``chosen[0]`` is the reference)."""
    sources = {pools.source_ids[c] for c in chosen}
    if same_speaker:
        return pools.speaker_ids[clip] == pools.speaker_ids[chosen[0]] and (
            pools.source_ids[clip] not in sources
        )
    speakers = {pools.speaker_ids[c] for c in chosen}
    return pools.source_ids[clip] not in sources and pools.speaker_ids[clip] not in speakers


def _pick_clips(pools: RecipePools, config: MixingConfig, rng: np.random.Generator) -> list[int]:
    n_clips = len(pools.clip_ids)
    chosen = [int(rng.integers(n_clips))]
    for _ in range(1, config.n_speakers or 1):
        same = bool(config.p_same_speaker) and rng.random() < config.p_same_speaker
        tries = rng.integers(n_clips, size=MAX_TRIES)
        pick = next(
            (int(c) for c in tries if _compatible(pools, chosen, int(c), same_speaker=same)), None
        )
        if pick is None:
            candidates = [
                c for c in range(n_clips) if _compatible(pools, chosen, c, same_speaker=same)
            ]
            if not candidates and same:  # no other source of that speaker: another speaker
                candidates = [
                    c for c in range(n_clips) if _compatible(pools, chosen, c, same_speaker=False)
                ]
            if not candidates:
                raise SamplerError("not enough different sources/speakers for this recipe")
            pick = candidates[int(rng.integers(len(candidates)))]
        chosen.append(pick)
    return chosen


def sample_recipe(
    pools: RecipePools, config: MixingConfig, *, epoch: int, index: int, attempt: int = 0
) -> MixtureSpec:
    """Recipe ``index`` of ``epoch``: a pure function of its arguments (see the module docstring).

    ``attempt`` > 0 draws a replacement from (seed, epoch, index, attempt), used when attempt 0
    cannot be rendered (a crop that falls in silence); it is just as reproducible.

    Example::

        pools = RecipePools.from_corpus("corpus/", Split.TRAIN)
        spec = sample_recipe(pools, MixingConfig(), epoch=0, index=17)
    """
    if epoch < 0 or index < 0:
        raise ValueError(f"epoch and index must be >= 0, got {epoch}, {index}")
    rng = recipe_rng(config.seed, epoch, index, attempt)
    total = _frames(config.duration_s)
    chosen = _pick_clips(pools, config, rng)
    starts = [0]
    for _ in chosen[1:]:
        overlap = rng.uniform(*config.overlap_ratio_range)
        starts.append(min(total - 1, round((1.0 - overlap) * total)))
    offsets = []
    for clip, start in zip(chosen, starts, strict=True):
        spare = pools.clip_frames[clip] - (total - start)
        offsets.append(int(rng.integers(spare + 1)) if spare > 0 else 0)
    gains = [float(rng.uniform(*config.reference_gain_db_range))]
    gains += [-float(rng.uniform(*config.sir_db_range)) for _ in chosen[1:]]
    noise_id = noise_offset = snr = noise_gain = None
    if config.p_noise and rng.random() < config.p_noise:
        k = int(rng.integers(len(pools.noise_ids)))
        noise_id = pools.noise_ids[k]
        noise_offset = _seconds(int(rng.integers(pools.noise_frames[k])))
        if config.noise_mode == NoiseMode.SNR:
            snr = float(rng.uniform(*config.snr_db_range))
        else:
            noise_gain = config.noise_gain
    rir_ids: list[str | None] = [None] * len(chosen)
    noise_rir = None
    if config.p_reverb and rng.random() < config.p_reverb:
        rooms = list(pools.rooms)
        positions = pools.rooms[rooms[int(rng.integers(len(rooms)))]]
        need = len(chosen) + (1 if noise_id and config.reverb_noise else 0)
        picks = rng.choice(len(positions), size=need, replace=len(positions) < need)
        rir_ids = [positions[int(p)] for p in picks[: len(chosen)]]
        if need > len(chosen):
            noise_rir = positions[int(picks[-1])]
    return MixtureSpec(
        mixture_id=f"mix-{config.split.value}-s{config.seed}-e{epoch}-i{index}"
        + (f"-a{attempt}" if attempt else ""),
        task=config.task,
        seed=derive_seed(config.seed, epoch, index, attempt),
        duration_s=config.duration_s,
        clip_ids=[pools.clip_ids[c] for c in chosen],
        offsets_s=[_seconds(o) for o in offsets],
        starts_s=[_seconds(s) for s in starts],
        gains_db=gains,
        rir_ids=rir_ids,
        split=config.split,
        reference=0,
        noise_id=noise_id,
        noise_offset_s=noise_offset,
        noise_snr_db=snr,
        noise_gain=noise_gain,
        noise_rir_id=noise_rir,
        epoch=epoch,
        index=index,
    )


class RecipeSampler:
    """Draws recipes for one config from fixed pools; checks the pools once at construction.

    Example::

        sampler = RecipeSampler.from_corpus("corpus/", MixingConfig(seed=3))
        specs = [sampler(epoch=0, index=i) for i in range(8)]
    """

    def __init__(self, pools: RecipePools, config: MixingConfig) -> None:
        check_pools(pools, config)
        self.pools = pools
        self.config = config

    @classmethod
    def from_corpus(cls, corpus: str, config: MixingConfig) -> RecipeSampler:
        return cls(RecipePools.from_corpus(corpus, config.split), config)

    def __call__(self, *, epoch: int, index: int, attempt: int = 0) -> MixtureSpec:
        return sample_recipe(self.pools, self.config, epoch=epoch, index=index, attempt=attempt)

    def take(self, count: int, *, epoch: int = 0, start: int = 0) -> list[MixtureSpec]:
        """Recipes ``start .. start + count - 1`` of ``epoch``."""
        return [self(epoch=epoch, index=i) for i in range(start, start + count)]


def overlap_ratio(spec: MixtureSpec, speaker: int) -> float:
    """Fraction of the mixture during which ``speaker`` overlaps the reference (reference starts at 0)."""
    return (spec.duration_s - spec.starts_s[speaker]) / spec.duration_s
