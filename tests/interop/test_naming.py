"""Stable names and splits for foreign ids."""

from __future__ import annotations

import re
from collections import Counter

from avforge.interop import hash_split, safe_name
from manifests.schema import Split


def test_safe_names_pass_through_and_unsafe_ones_are_slugged_with_a_stable_hash():
    assert safe_name("1089-134686-0000") == "1089-134686-0000"
    a, b = safe_name("spk 1/utt#2"), safe_name("spk 1/utt?2")
    assert re.fullmatch(r"spk_1_utt_2-[0-9a-f]{10}", a)
    assert a != b  # same slug, different inputs: the hash keeps them apart
    assert safe_name("spk 1/utt#2") == a
    assert safe_name(".hidden") != ".hidden" and not safe_name(".hidden").startswith(".")
    assert len(safe_name("x" * 500)) <= 80


def test_hash_split_is_deterministic_and_follows_the_ratios():
    keys = [f"speaker-{i}" for i in range(4000)]
    splits = [hash_split(k, val_ratio=0.1, test_ratio=0.2, salt="s") for k in keys]
    assert splits == [hash_split(k, val_ratio=0.1, test_ratio=0.2, salt="s") for k in keys]
    counts = Counter(splits)
    assert abs(counts[Split.TEST] / 4000 - 0.2) < 0.03
    assert abs(counts[Split.VAL] / 4000 - 0.1) < 0.03
    resalted = [hash_split(k, val_ratio=0.1, test_ratio=0.2, salt="t") for k in keys]
    assert resalted != splits
