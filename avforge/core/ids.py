"""Stable ids, short hashes and the train / val / test split: the one home of each rule.

Everything here is a pure function of its arguments (no randomness, no machine or process state), so
the same input gives the same answer on every machine and in every run. Changing any of these rules
changes existing ids and the split of newly written rows: ``tests/avforge/test_ids.py`` pins known
answers so that such a change cannot pass unnoticed.

- :func:`stable_hash`: a short hex digest of a text, for ids and file names;
- :func:`split_fraction` and :func:`hash_split`: a key's split from a salted SHA-256 (curation's
  per-source rule, also used for imported corpora, noises and RIR rooms);
- :class:`Split`: the three splits (re-exported by :mod:`manifests.schema`, whose tables store it).
"""

from __future__ import annotations

import enum
import hashlib

__all__ = ["Split", "hash_split", "split_fraction", "stable_hash"]


class Split(enum.StrEnum):
    """A dataset split; a manifest column stores its value (``"train"``, ``"val"``, ``"test"``)."""

    TRAIN = "train"
    VAL = "val"
    TEST = "test"


def stable_hash(text: str, n: int) -> str:
    """The first ``n`` hex digits (``1 <= n <= 64``) of the SHA-256 of ``text`` encoded as UTF-8.

    Deterministic and lower-case; used to make ids and names unique and stable across reruns::

        stable_hash("abc", 8)  # 'ba7816bf'
    """
    if not 1 <= n <= 64:
        raise ValueError(f"n must be in [1, 64], got {n}")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def split_fraction(key: str, salt: str) -> float:
    """``key``'s position in [0, 1): the first 8 bytes of SHA-256 of ``"<salt>:<key>"`` (UTF-8), read
    big-endian as an unsigned integer and divided by 2^64. Uniform over keys; a different salt gives
    an independent assignment."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def hash_split(key: str, *, val_ratio: float, test_ratio: float, salt: str) -> Split:
    """Split of ``key`` from ``u = split_fraction(key, salt)``: ``u < test_ratio`` -> test,
    ``u < test_ratio + val_ratio`` -> val, else train.

    Same key, salt and ratios: same split, on every machine. Ratios are shares in [0, 1] with
    ``val_ratio + test_ratio <= 1`` (callers' configs check that). A key in test stays in test when
    ``test_ratio`` grows; a key in train stays in train when either ratio shrinks.
    """
    u = split_fraction(key, salt)
    if u < test_ratio:
        return Split.TEST
    if u < test_ratio + val_ratio:
        return Split.VAL
    return Split.TRAIN
