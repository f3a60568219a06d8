"""Recipe sampling: determinism from (seed, epoch, index), different sources, alignment, presets."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from avforge.core.config import ConfigError, config_from_dict
from manifests.schema import MixTask, Split
from mixing.config import MixingConfig, NoiseMode, preset_config
from mixing.functional import is_aligned
from mixing.sampler import RecipePools, RecipeSampler, SamplerError, derive_seed, overlap_ratio


@pytest.fixture(scope="module")
def pools(corpus):
    return RecipePools.from_corpus(str(corpus), Split.TRAIN)


def test_pools_come_from_the_manifests(pools):
    assert len(pools.clip_ids) == 8 and len(set(pools.speaker_ids)) == 4
    assert len(pools.noise_ids) == 3 and len(pools.rooms) == 3


@given(st.integers(0, 2**32), st.integers(0, 50), st.integers(0, 10**6))
@settings(max_examples=30, deadline=None, database=None, derandomize=True)
def test_recipe_depends_only_on_seed_epoch_index(pools, seed, epoch, index):
    cfg = preset_config(
        MixTask.CUSTOM, n_speakers=3, p_reverb=0.5, overlap_ratio_range=(0.2, 1.0), seed=seed
    )
    sampler = RecipeSampler(pools, cfg)
    spec = sampler(epoch=epoch, index=index)
    sampler(epoch=epoch, index=index + 1)  # drawing another item first changes nothing
    assert sampler(epoch=epoch, index=index) == spec
    assert spec.seed == derive_seed(seed, epoch, index)
    assert len({pools.source_ids[pools.clip_ids.index(c)] for c in spec.clip_ids}) == 3
    assert len({pools.speaker_ids[pools.clip_ids.index(c)] for c in spec.clip_ids}) == 3
    assert all(is_aligned(t) for t in [*spec.offsets_s, *spec.starts_s, spec.noise_offset_s or 0.0])
    assert spec.starts_s[0] == 0 and all(0.2 - 0.04 <= overlap_ratio(spec, i) <= 1 for i in (1, 2))
    assert spec.gains_db[0] == 0 and all(-5 <= -g <= 5 for g in spec.gains_db[1:])
    rooms = {r.split("-s")[0] for r in spec.rir_ids if r}
    assert len(rooms) <= 1 and (all(spec.rir_ids) or not any(spec.rir_ids))


def test_different_indices_and_epochs_differ(pools):
    sampler = RecipeSampler(pools, MixingConfig(seed=1))
    specs = sampler.take(40)
    assert len({(tuple(s.clip_ids), tuple(s.offsets_s)) for s in specs}) > 30
    assert sampler(epoch=1, index=0) != specs[0]


@pytest.mark.parametrize(
    ("task", "speakers", "noisy"),
    [
        (MixTask.ONE_SPEAKER_NOISE, 1, True),
        (MixTask.TWO_SPEAKERS, 2, False),
        (MixTask.TWO_SPEAKERS_NOISE, 2, True),
        (MixTask.THREE_SPEAKERS, 3, False),
    ],
)
def test_paper_task_presets(pools, task, speakers, noisy):
    cfg = preset_config(task)
    assert cfg.n_speakers == speakers and cfg.noise_mode == NoiseMode.GAIN and cfg.noise_gain == 0.3
    for spec in RecipeSampler(pools, cfg).take(10):
        assert spec.task == task and len(spec.clip_ids) == speakers
        assert (spec.noise_id is not None) == noisy
        assert spec.noise_gain == (0.3 if noisy else None) and spec.noise_snr_db is None


def test_same_speaker_interference_uses_another_source(pools):
    cfg = preset_config(MixTask.CUSTOM, p_same_speaker=1.0)
    for spec in RecipeSampler(pools, cfg).take(10):
        a, b = (pools.clip_ids.index(c) for c in spec.clip_ids)
        assert (
            pools.speaker_ids[a] == pools.speaker_ids[b]
            and pools.source_ids[a] != pools.source_ids[b]
        )


def test_pools_that_cannot_serve_the_config_fail_early(pools):
    with pytest.raises(SamplerError, match="4 different sources"):
        few = RecipePools(
            pools.clip_ids[:6],
            pools.source_ids[:6],
            pools.speaker_ids[:6],
            pools.clip_frames[:6],
            [],
            [],
            {},
        )
        RecipeSampler(few, preset_config(MixTask.CUSTOM, n_speakers=4, p_noise=0.0))
    with pytest.raises(SamplerError, match="no RIR"):
        RecipeSampler(
            dataclass_replace(pools, rooms={}), preset_config(MixTask.CUSTOM, p_reverb=0.1)
        )
    with pytest.raises(SamplerError, match="no clip in split 'val'"):
        RecipeSampler(
            RecipePools.from_tables(*_tables(pools), Split.VAL), MixingConfig(split=Split.VAL)
        )


def dataclass_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def _tables(pools):

    from manifests.schema import empty_table

    return empty_table("clips"), empty_table("noises"), empty_table("rirs")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"task": "3s_clean", "n_speakers": 2}, "n_speakers"),
        ({"task": "2s_clean", "p_noise": 0.5}, "p_noise"),
        ({"duration_s": 3.01}, "multiple of 0.04"),
        ({"sir_db_range": [5, -5]}, "sir_db_range"),
        ({"overlap": 1.0}, "unknown key"),
        ({"render": {"peak_max_abs": 1.5}}, "render.peak_max_abs"),
    ],
)
def test_config_validation_names_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(MixingConfig, data)


def test_yaml_task_fills_the_preset():
    cfg = config_from_dict(MixingConfig, {"task": "3s_clean"})
    assert (cfg.n_speakers, cfg.p_noise, cfg.noise_mode) == (3, 0.0, NoiseMode.GAIN)
