"""Ids, file names and splits for data crossing avforge's boundary (pure functions, no I/O).

- :func:`safe_name` turns a foreign id (a Lhotse cut id may hold ``/`` or spaces) into a stable
  ``[A-Za-z0-9_.-]`` name that is still readable and never collides for two different inputs;
- :func:`hash_split` assigns train / val / test from a key (a speaker, a recording) by a salted
  SHA-256, the same rule as curation's per-source split: same key, same split, on every machine.
"""

from __future__ import annotations

import hashlib
import re

from manifests.schema import Split

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_MAX_NAME = 80


def _sha(text: str, n: int) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def safe_name(text: str) -> str:
    """``text`` when it is already a safe name (``[A-Za-z0-9_.-]``, not starting with ``.``, at most 80
    characters), else a slug of it plus 10 hex digits of its SHA-256 (stable, collision-free).

    Example::

        safe_name("1089-134686-0000")      # '1089-134686-0000'
        safe_name("spk 1/utt#2")           # 'spk_1_utt_2-<10 hex digits>'
    """
    if text and len(text) <= _MAX_NAME and not _UNSAFE.search(text) and not text.startswith("."):
        return text
    slug = _UNSAFE.sub("_", text).strip("._")[:60] or "item"
    return f"{slug}-{_sha(text, 10)}"


def hash_split(key: str, *, val_ratio: float, test_ratio: float, salt: str) -> Split:
    """Split of ``key``: ``u`` = first 8 bytes of SHA-256 of ``<salt>:<key>`` as a fraction of 2^64;
    ``u < test_ratio`` -> test, ``u < test_ratio + val_ratio`` -> val, else train."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2.0**64
    if u < test_ratio:
        return Split.TEST
    if u < test_ratio + val_ratio:
        return Split.VAL
    return Split.TRAIN
