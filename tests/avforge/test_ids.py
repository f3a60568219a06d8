"""Known answers for avforge.core.ids: stable hashes and the one train / val / test split rule.

The expected values were computed once (with the rule curation has used since ``avforge-split-v1``);
a change of the rule changes existing ids and curated corpora's splits, so it must fail here."""

from __future__ import annotations

import hashlib

import pytest

import manifests
from avforge.core.ids import Split, hash_split, split_fraction, stable_hash
from avforge.interop import hash_split as interop_hash_split
from avforge.interop.naming import hash_split as naming_hash_split
from curation.export import ExportConfig, split_for
from manifests.schema import Split as SchemaSplit

SALT = "avforge-split-v1"  # ExportConfig's default split_salt

KEYS = [f"key-{i}" for i in range(10_000)]


def test_split_is_one_enum_everywhere():
    assert SchemaSplit is Split and manifests.Split is Split
    assert [s.value for s in Split] == ["train", "val", "test"]


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("abc", 8, "ba7816bf"),
        ("", 12, "e3b0c44298fc"),
        ("héllo wörld", 16, "a1003f7d04a41157"),
        (
            "https://example.org/a.mp4",
            64,
            "a8b8a42b8ef6ed1c00205272d9ee41b755a59dd6d070994f9db536df35f39ff3",
        ),
    ],
)
def test_stable_hash_known_answers(text, n, expected):
    assert stable_hash(text, n) == expected
    assert stable_hash(text, n) == hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


@pytest.mark.parametrize("n", [0, 65])
def test_stable_hash_rejects_a_length_outside_a_digest(n):
    with pytest.raises(ValueError, match="n must be"):
        stable_hash("abc", n)


def test_split_fraction_known_answers():
    assert split_fraction("key-1", SALT) == 0.034046316409615245
    assert split_fraction("local-talk", SALT) == 0.0016063805156038636
    assert split_fraction("dQw4w9WgXcQ", SALT) == 0.251964723106601
    assert split_fraction("key-3", "noise") == 0.004604394391792389  # the salt changes u


@pytest.mark.parametrize(
    ("key", "val_ratio", "test_ratio", "expected"),
    [
        # the curation defaults (5 % val, 5 % test): test is [0, 0.05), val [0.05, 0.1)
        ("local-talk", 0.05, 0.05, Split.TEST),  # u = 0.0016
        ("key-1", 0.05, 0.05, Split.TEST),  # u = 0.0340
        ("key-9", 0.05, 0.05, Split.VAL),  # u = 0.0816
        ("key-3", 0.05, 0.05, Split.TRAIN),  # u = 0.1287
        ("dQw4w9WgXcQ", 0.05, 0.05, Split.TRAIN),  # u = 0.2520
        # 10 % / 10 %: test is [0, 0.1), val [0.1, 0.2)
        ("key-9", 0.1, 0.1, Split.TEST),
        ("key-3", 0.1, 0.1, Split.VAL),
        ("key-34", 0.1, 0.1, Split.VAL),  # u = 0.1824
        ("key-4", 0.1, 0.1, Split.TRAIN),  # u = 0.2006
        # no held-out share: everything is train
        ("local-talk", 0.0, 0.0, Split.TRAIN),
    ],
)
def test_hash_split_known_answers(key, val_ratio, test_ratio, expected):
    assert hash_split(key, val_ratio=val_ratio, test_ratio=test_ratio, salt=SALT) == expected


@pytest.mark.parametrize(("val_ratio", "test_ratio"), [(0.05, 0.05), (0.1, 0.2), (0.3, 0.0)])
def test_hash_split_fractions_follow_the_ratios(val_ratio, test_ratio):
    splits = [hash_split(k, val_ratio=val_ratio, test_ratio=test_ratio, salt=SALT) for k in KEYS]
    share = {s: splits.count(s) / len(KEYS) for s in Split}
    assert share[Split.VAL] == pytest.approx(val_ratio, abs=0.02)
    assert share[Split.TEST] == pytest.approx(test_ratio, abs=0.02)
    assert share[Split.TRAIN] == pytest.approx(1 - val_ratio - test_ratio, abs=0.02)


def test_curation_and_interop_use_the_one_rule():
    cfg = ExportConfig(val_ratio=0.1, test_ratio=0.2, split_salt="s")
    expected = [hash_split(k, val_ratio=0.1, test_ratio=0.2, salt="s") for k in KEYS]
    assert [split_for(k, cfg) for k in KEYS] == expected
    assert [
        interop_hash_split(k, val_ratio=0.1, test_ratio=0.2, salt="s") for k in KEYS
    ] == expected
    assert naming_hash_split is hash_split
    default = ExportConfig()
    assert split_for("key-9", default) == Split.VAL and split_for("key-1", default) == Split.TEST
