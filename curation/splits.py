"""Leak-free splits: the corpus-level pass that assigns train/val/test to connected groups of clips.

Why: ``curate`` splits by source video (``curation.export.split_for``), but in-the-wild corpora leak
anyway: one person speaks in many videos, and one talk is uploaded several times. This pass joins
clips into groups that must share a split and assigns splits per group.

Contract (:func:`run_split_pass`, ``avforge split CORPUS``):

- input: a curated corpus (``clips``, ``sources``, ``media``; imported audio-only clips work too), an
  optional list of held-out ids (source ids, YouTube ids, clip ids or speaker ids; e.g. a public test
  list) and :class:`SplitPassConfig`;
- grouping (union-find over clips): clips of one source (one split key: the YouTube id of an AVSpeech
  row); clips of one pseudo-speaker (voice embeddings clustered across the corpus,
  ``curation.clusters``); sources that are near-duplicates (same audio at one offset,
  ``curation.fingerprint``);
- assignment: a clip assigned by an earlier pass keeps its split (the ``splits`` table is the
  record); a group with no assigned clip gets ``split_for(smallest split key of the group)``, the
  same hash rule as ``curate``; new clips of a group that has assigned clips take the group's most
  common assigned split (ties: test, then val, then train). A group holding a held-out id never has
  clips in train: its train clips go to test (the only case in which an assigned clip moves; counted
  in :attr:`SplitSummary.moved_heldout`). When the corpus grows and a new clip joins two groups that
  earlier passes put in different splits, the old clips stay where they are and the group is
  reported as a leak (it cannot be fixed without moving clips);
- output: every ``clips`` shard whose rows change is rewritten (``split``; ``speaker_id`` set to the
  pseudo-speaker unless the row has a known speaker label, which also joins its clips), then the
  ``splits`` table (one :class:`manifests.SplitRecord` per clip) is written last, each file
  atomically; a pass killed half-way is redone by rerunning it (the plan is deterministic);
- :func:`find_leaks` / ``avforge split --check``: the leaks the corpus's current split has (a
  pseudo-speaker or a group over several splits; a held-out id in train), writing nothing;
  ``avforge report`` shows the same from the last pass's ``splits`` table.

Cost: speaker clustering is O(n²) in clips (``curation.clusters.MAX_CLIPS``); fingerprints are made
from the clips' stored audio on every pass (about 0.2 s a minute of audio).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from avforge.core.config import check_range
from avforge.core.ids import stable_hash
from curation.clusters import DEFAULT_THRESHOLD, cluster_speakers
from curation.export import ExportConfig, split_for, split_key
from curation.fingerprint import DuplicateIndex, Fingerprint, source_fingerprint
from manifests.io import (
    exists,
    list_shards,
    media_file,
    read_manifest,
    read_table,
    require_corpus,
    shard_path,
    write_records,
)
from manifests.media import MediaReader
from manifests.schema import (
    TABLES,
    ClipRecord,
    SourceKind,
    Split,
    SplitRecord,
    table_to_records,
)

SPLITS_SHARD = "assignments"
_TIE_ORDER = {Split.TEST: 0, Split.VAL: 1, Split.TRAIN: 2}


@dataclass(frozen=True)
class SplitPassConfig:
    """How the split pass groups clips (ratios and salt come from ``ExportConfig``)."""

    speaker_threshold: float = DEFAULT_THRESHOLD
    """Cosine similarity at which pseudo-speaker clusters merge (calibrated: docs/splits.md)."""
    link_speakers: bool = True
    link_duplicates: bool = True
    export: ExportConfig = field(default_factory=ExportConfig)

    def __post_init__(self) -> None:
        check_range(self, "speaker_threshold", -1.0, 1.0)


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass(frozen=True)
class SplitPlan:
    """The pass's result for every clip (in the input order) and what it found."""

    records: list[SplitRecord]
    duplicate_links: list[tuple[str, str]]
    moved_heldout: int
    conflicts: list[str]
    """Group ids whose earlier-assigned clips are in several splits (leaks that stay)."""


def plan_splits(
    clips: Sequence[ClipRecord],
    kinds: dict[str, SourceKind],
    embeddings: np.ndarray | None,
    fingerprints: dict[str, Fingerprint] | None,
    previous: dict[str, SplitRecord],
    heldout: Iterable[str] = (),
    cfg: SplitPassConfig | None = None,
) -> SplitPlan:
    """The assignment (pure; see the module docstring). ``embeddings`` (n, d) row i is clip i's;
    ``fingerprints`` maps source id -> its fingerprint; ``previous`` maps clip id -> its record."""
    cfg = cfg or SplitPassConfig()
    held = set(heldout)
    n = len(clips)
    uf = _UnionFind(n)
    keys = [split_key(c.source_id, kinds.get(c.source_id, SourceKind.URL)) for c in clips]
    first_of_key: dict[str, int] = {}
    for i, k in enumerate(keys):
        uf.union(first_of_key.setdefault(k, i), i)
    # Pseudo-speakers.
    if cfg.link_speakers and embeddings is not None and n:
        labels = cluster_speakers(embeddings, cfg.speaker_threshold)
    else:
        labels = np.array([first_of_key[k] for k in keys])
    members: dict[int, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels.tolist()):
        members[lab].append(i)
    speaker_of = [""] * n
    for idx in members.values():
        sid = "spk-" + stable_hash(min(clips[i].clip_id for i in idx), 12)
        for i in idx:
            speaker_of[i] = sid
            uf.union(idx[0], i)
    # Known speaker labels (e.g. imported with the clips) join their clips too.
    first_of_label: dict[str, int] = {}
    for i, c in enumerate(clips):
        if c.speaker_id and not c.speaker_id.startswith("spk-"):
            uf.union(first_of_label.setdefault(c.speaker_id, i), i)
    # Near-duplicate sources.
    links: list[tuple[str, str]] = []
    if cfg.link_duplicates and fingerprints:
        first_of_source = {}
        for i, c in enumerate(clips):
            first_of_source.setdefault(c.source_id, i)
        index = DuplicateIndex()
        for sid in sorted(fingerprints):
            if sid not in first_of_source:
                continue
            for other, _ in index.add(sid, fingerprints[sid]):
                links.append((other, sid))
                uf.union(first_of_source[other], first_of_source[sid])
    # Groups and their splits.
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[uf.find(i)].append(i)
    out: list[SplitRecord | None] = [None] * n
    moved = 0
    conflicts: list[str] = []
    for idx in groups.values():
        group_keys = sorted({keys[i] for i in idx})
        gid = "grp-" + stable_hash(group_keys[0], 12)
        ids = set(group_keys)
        for i in idx:
            ids.update((clips[i].clip_id, clips[i].source_id, speaker_of[i]))
        is_held = bool(ids & held)
        before = [previous[clips[i].clip_id].split for i in idx if clips[i].clip_id in previous]
        if before:
            counts = Counter(before)
            top = max(counts.values())
            default = min((s for s in counts if counts[s] == top), key=_TIE_ORDER.__getitem__)
            if len(counts) > 1:
                conflicts.append(gid)
        else:
            default = split_for(group_keys[0], cfg.export)
        for i in idx:
            prev = previous.get(clips[i].clip_id)
            split = prev.split if prev is not None else default
            if is_held and split == Split.TRAIN:
                split = Split.TEST
                moved += prev is not None
            out[i] = SplitRecord(
                clip_id=clips[i].clip_id,
                source_id=clips[i].source_id,
                speaker_id=speaker_of[i],
                group_id=gid,
                split=split,
                heldout=is_held,
            )
    return SplitPlan([r for r in out if r is not None], sorted(links), moved, sorted(conflicts))


# --------------------------------------------------------------------------- leaks


@dataclass(frozen=True)
class LeakReport:
    """Leaks of a split: groups of clips that must share a split but do not, and held-out ids in train."""

    speakers: dict[str, dict[str, int]]
    """Pseudo-speaker id -> clips per split, for speakers in more than one split."""
    groups: dict[str, dict[str, int]]
    """Group id -> clips per split, for groups in more than one split."""
    heldout_in_train: list[str]
    """Clip ids in train whose group holds a held-out id."""
    clips: int = 0

    @property
    def ok(self) -> bool:
        return not (self.speakers or self.groups or self.heldout_in_train)

    def format(self) -> str:
        lines = [
            f"{self.clips} clips: {len(self.speakers)} pseudo-speaker(s) and {len(self.groups)} "
            f"group(s) span several splits; {len(self.heldout_in_train)} held-out clip(s) in train"
        ]
        for name, d in (("speaker", self.speakers), ("group", self.groups)):
            for k, v in sorted(d.items())[:10]:
                lines.append(
                    f"  {name} {k}: " + ", ".join(f"{s} {n}" for s, n in sorted(v.items()))
                )
        return "\n".join(lines)


def find_leaks(
    current: dict[str, Split], records: Sequence[SplitRecord], heldout: Iterable[str] = ()
) -> LeakReport:
    """Leaks of ``current`` (clip id -> its split now) given the groups in ``records`` (a pass's plan
    or the ``splits`` table); held-out ids are matched as in :func:`plan_splits` (``records``'
    ``heldout`` flags count too)."""
    held = set(heldout)
    by_speaker: dict[str, Counter[str]] = defaultdict(Counter)
    by_group: dict[str, Counter[str]] = defaultdict(Counter)
    group_held: dict[str, bool] = defaultdict(bool)
    for r in records:
        if r.clip_id not in current:
            continue
        s = str(current[r.clip_id])
        by_speaker[r.speaker_id][s] += 1
        by_group[r.group_id][s] += 1
        if r.heldout or {r.clip_id, r.source_id, r.speaker_id} & held:
            group_held[r.group_id] = True
    held_train = sorted(
        r.clip_id
        for r in records
        if r.clip_id in current and group_held[r.group_id] and current[r.clip_id] == Split.TRAIN
    )
    return LeakReport(
        speakers={k: dict(v) for k, v in by_speaker.items() if len(v) > 1},
        groups={k: dict(v) for k, v in by_group.items() if len(v) > 1},
        heldout_in_train=held_train,
        clips=sum(1 for r in records if r.clip_id in current),
    )


# --------------------------------------------------------------------------- corpus pass


@dataclass(frozen=True)
class SplitSummary:
    """What a pass did (printed by ``avforge split``)."""

    clips: int
    speakers: int
    groups: int
    duplicate_links: list[tuple[str, str]]
    new_clips: int
    moved_heldout: int
    counts: dict[str, int]
    leaks: LeakReport
    written: bool

    def format(self) -> str:
        split_counts = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        lines = [
            f"{self.clips} clips, {self.speakers} pseudo-speaker(s), {self.groups} group(s), "
            f"{len(self.duplicate_links)} duplicate source link(s); {self.new_clips} newly assigned"
            f"{'' if self.written else ' (check only: nothing written)'}",
            f"splits: {split_counts}",
        ]
        if self.moved_heldout:
            lines.append(f"moved {self.moved_heldout} clip(s) from train to test (held-out ids)")
        lines.append(("leaks: " if not self.leaks.ok else "no leaks: ") + self.leaks.format())
        return "\n".join(lines)


def read_heldout(path: str | Path) -> set[str]:
    """Held-out ids, one a line (``#`` comments and blank lines skipped; a CSV line counts by its
    first field). Raises ``OSError`` / ``UnicodeDecodeError`` for an unreadable file."""
    ids = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        item = line.split("#", 1)[0].split(",", 1)[0].strip()
        if item:
            ids.add(item)
    return ids


def read_split_records(corpus: str) -> list[SplitRecord]:
    """The last pass's ``splits`` rows (empty when no pass has run)."""
    path = shard_path(corpus, "splits", SPLITS_SHARD)
    if not exists(path):
        return []
    return table_to_records(read_table(path, TABLES["splits"].schema), SplitRecord)


def _clip_shards(corpus: str) -> dict[str, list[ClipRecord]]:
    return {
        shard: table_to_records(
            read_table(shard_path(corpus, "clips", shard), TABLES["clips"].schema), ClipRecord
        )
        for shard in list_shards(corpus, "clips")
    }


def run_split_pass(
    corpus: str,
    heldout: Iterable[str] = (),
    cfg: SplitPassConfig | None = None,
    *,
    write: bool = True,
) -> SplitSummary:
    """Group, assign and (unless ``write`` is False) record leak-free splits of ``corpus``.

    With ``write=False`` nothing is written and :attr:`SplitSummary.leaks` are those of the corpus's
    current split (``--check``); with ``write=True`` they are those left after the pass (conflicts
    between earlier passes' assignments, see the module docstring). Raises
    :class:`manifests.io.ManifestError` for an unreadable corpus and
    :class:`curation.voice.VoiceModelError` when embeddings must be computed and the model is missing.
    """
    cfg = cfg or SplitPassConfig()
    held = set(heldout)
    corpus = require_corpus(corpus)
    shards = _clip_shards(corpus)
    clips = [c for shard in sorted(shards) for c in shards[shard]]
    sources = read_manifest(corpus, "sources")
    kinds = {
        sid: SourceKind(kind)
        for sid, kind in zip(
            sources.column("source_id").to_pylist(), sources.column("kind").to_pylist(), strict=True
        )
    }
    reader = MediaReader()

    def media_dir(c: ClipRecord) -> str:
        return media_file(corpus, c.media_shard)

    embeddings = None
    if cfg.link_speakers and clips:
        rows = []
        for c in clips:
            e = reader.voice_embedding(media_dir(c), c.media_row)
            if e is None:
                from curation.voice import load_voice_encoder

                e = load_voice_encoder().embed(
                    reader.audio(media_dir(c), c.media_row), c.sample_rate_hz
                )
            rows.append(e)
        embeddings = np.stack(rows)
    fingerprints = None
    if cfg.link_duplicates and clips:
        per_source: dict[str, list[tuple[float, np.ndarray, int]]] = defaultdict(list)
        for c in clips:
            audio = reader.audio(media_dir(c), c.media_row)
            per_source[c.source_id].append((c.start_s, audio, c.sample_rate_hz))
        fingerprints = {sid: source_fingerprint(parts) for sid, parts in per_source.items()}
    previous = {r.clip_id: r for r in read_split_records(corpus)}
    plan = plan_splits(clips, kinds, embeddings, fingerprints, previous, held, cfg)
    new_clips = sum(1 for c in clips if c.clip_id not in previous)
    if write and clips:
        by_id = {r.clip_id: r for r in plan.records}
        for shard, rows in sorted(shards.items()):
            updated = [
                replace(
                    c,
                    split=by_id[c.clip_id].split,
                    speaker_id=c.speaker_id
                    if c.speaker_id and not c.speaker_id.startswith("spk-")
                    else by_id[c.clip_id].speaker_id,
                )
                for c in rows
            ]
            if updated != rows:
                write_records(corpus, "clips", shard, updated)
        write_records(corpus, "splits", SPLITS_SHARD, plan.records)
        current = {r.clip_id: r.split for r in plan.records}
    else:
        current = {c.clip_id: c.split for c in clips}
    leaks = find_leaks(current, plan.records, held)
    counts = Counter(str(current[c.clip_id]) for c in clips)
    return SplitSummary(
        clips=len(clips),
        speakers=len({r.speaker_id for r in plan.records}),
        groups=len({r.group_id for r in plan.records}),
        duplicate_links=plan.duplicate_links,
        new_clips=new_clips,
        moved_heldout=plan.moved_heldout,
        counts=dict(counts),
        leaks=leaks,
        written=write,
    )
