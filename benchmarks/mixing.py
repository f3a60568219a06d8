"""Mixing speed: avforge's on-the-fly renderer vs Lhotse's ``MixedCut.load_audio``, side by side.

What is measured: mixtures per second in one process (one thread) for 2 speakers + noise, 3 s at
16 kHz, audio only, with and without reverb. Both tools mix the *same* recipes from the *same* clips:

- avforge: a corpus built with ``avforge.testing.corpus.build_corpus`` (real speech from
  ``avforge/assets/audio``, PCM16 media shards) plus a simulated RIR bank; recipes drawn by
  ``RecipeSampler``; timed: ``MixtureRenderer.render_audio(spec)`` per recipe (crop, active-speech
  levels, SIR/SNR gains, reverb with full + early RIR, peak guard).
- Lhotse: the same clips, noises and RIRs exported as WAV files (its usual on-disk input), one
  ``MixedCut`` per recipe built as ``cut1[.reverb_rir(rir1)].mix(cut2[.reverb_rir(rir2)], snr=SIR)
  .mix(noise, snr=SNR)`` with the recipe's offsets; timed: ``cut.load_audio()`` per cut.

Lhotse always runs in a subprocess of this script (same machine, same run), by default with this
interpreter when it can import lhotse (the project venv has it, the interop extra), else with
``--lhotse-python`` (an environment of its own)::

    .venv/bin/python benchmarks/mixing.py --count 300 --rounds 7

The two tools take turns, Lhotse ``--chunk`` recipes a turn (24) and avforge ``--turn-ratio`` times
as many (default 10 dry, 3 reverberant: the target ratios, so that a turn lasts about as long for
either tool; ``--turn-ratio 1`` gives equal counts), and who goes first alternates, so both see the
same machine load and each refills its caches after the other's turn once per turn. avforge renders
``--batch`` recipes per call (``render_audio_batch``, as the training loader does; 1: one
``render_audio`` per recipe). Per round the script sums each tool's wall and CPU seconds (CPU: this
process, resp. the Lhotse worker process) and reports the medians over rounds of the per-round
ratios of mixtures per second. ``--lhotse-python ''`` measures avforge alone. Results are printed as a Markdown table and
written as JSON to ``--out``; the scratch corpus is deleted unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# ----------------------------------------------------------------------------- lhotse side


def lhotse_worker(job_path: str) -> None:
    """Runs inside the Lhotse environment: build the MixedCuts of the job and time load_audio."""
    import numpy as np
    from lhotse import Recording

    job = json.loads(Path(job_path).read_text())
    recordings: dict[str, Recording] = {}

    def rec(path: str) -> Recording:
        if path not in recordings:
            recordings[path] = Recording.from_file(path)
        return recordings[path]

    results: dict[str, list] = {}
    for name, recipes in job["sets"].items():
        cuts = []
        for r in recipes:
            c1 = (
                rec(r["clips"][0]).to_cut().truncate(offset=r["offsets"][0], duration=r["duration"])
            )
            c2 = (
                rec(r["clips"][1]).to_cut().truncate(offset=r["offsets"][1], duration=r["duration"])
            )
            if r["rirs"][0]:
                c1 = c1.reverb_rir(rec(r["rirs"][0]))
                c2 = c2.reverb_rir(rec(r["rirs"][1]))
            noise_rec = rec(r["noise"])
            noise_offset = min(r["noise_offset"], noise_rec.duration - r["duration"])
            noise = noise_rec.to_cut().truncate(offset=noise_offset, duration=r["duration"])
            cuts.append(c1.mix(c2, snr=r["sir"]).mix(noise, snr=r["snr"]))
        for cut in cuts[:5]:  # warm-up: file handles, caches
            cut.load_audio()
        sample = np.stack([cuts[i].load_audio()[0] for i in range(job["n_compare"])])
        np.save(Path(job["out_dir"]) / f"lhotse_{name}.npy", sample)
        results[name] = cuts
    import lhotse

    print(json.dumps({"ready": True, "lhotse_version": lhotse.__version__}), flush=True)
    for line in sys.stdin:  # "go NAME START STOP": time cuts START..STOP-1 of that setting
        _, name, first, last = line.split()
        cuts = results[name][int(first) : int(last)]
        wall, cpu = time.perf_counter(), time.process_time()
        for cut in cuts:
            cut.load_audio()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        print(json.dumps({"wall_s": wall, "cpu_s": cpu}), flush=True)


# ----------------------------------------------------------------------------- avforge side


def build_bench_corpus(work: Path, n_rooms: int) -> Path:
    from avforge.core.cluster import ClusterConfig, ClusterType
    from avforge.testing.corpus import build_corpus
    from mixing.rirs import RirConfig, build_rirs

    corpus = build_corpus(
        work, n_speakers=7, clips_per_speaker=4, clip_duration_s=6.0, with_faces=False
    )
    build_rirs(
        str(corpus),
        RirConfig(
            n_rooms=n_rooms,
            sources_per_room=4,
            rooms_per_shard=n_rooms,
            val_fraction=0,
            test_fraction=0,
        ),
        ClusterConfig(type=ClusterType.SYNCHRONOUS),
    )
    return corpus


def export_wavs(corpus: Path, out: Path) -> dict[str, str]:
    """Every clip, noise and full RIR of the corpus as a WAV file (Lhotse's input); id -> path."""
    import soundfile

    import manifests

    reader = manifests.MediaReader()
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for table, key, subtype in (
        ("clips", "clip_id", "PCM_16"),
        ("noises", "noise_id", "PCM_16"),
        ("rirs", "rir_id", "FLOAT"),
    ):
        for row in manifests.read_manifest(str(corpus), table).to_pylist():
            audio = reader.audio(str(corpus / "media" / row["media_shard"]), row["media_row"])
            path = out / f"{row[key]}.wav"
            soundfile.write(path, audio, 16000, subtype=subtype)
            paths[row[key]] = str(path)
    return paths


def time_avforge(renderer, specs, batch: int) -> tuple[float, float]:
    """(wall s, CPU s of this process) of one pass over ``specs``: one ``render_audio`` per recipe
    (``batch`` 1) or ``render_audio_batch`` over ``batch`` recipes at a time."""
    from mixing.render_batch import render_audio_batch

    wall, cpu = time.perf_counter(), time.process_time()
    if batch == 1:
        for spec in specs:
            renderer.render_audio(spec)
    else:
        for first in range(0, len(specs), batch):
            render_audio_batch([(renderer, s) for s in specs[first : first + batch]])
    return time.perf_counter() - wall, time.process_time() - cpu


def time_lhotse(worker: subprocess.Popen, name: str, first: int, last: int) -> tuple[float, float]:
    """(wall s, CPU s of the worker) of Lhotse loading cuts ``first..last-1`` of setting ``name``."""
    worker.stdin.write(f"go {name} {first} {last}\n")  # type: ignore[union-attr]
    worker.stdin.flush()  # type: ignore[union-attr]
    reply = json.loads(worker.stdout.readline())  # type: ignore[union-attr]
    return reply["wall_s"], reply["cpu_s"]


def run_round(
    renderer, specs, worker, name: str, chunk: int, batch: int, ratio: int
) -> dict[str, float]:
    """One round of one setting: the two tools take turns, Lhotse ``chunk`` recipes a turn and
    avforge ``ratio * chunk`` (``specs`` holds ``ratio`` times Lhotse's count), so that turns last
    about as long for both when avforge is ``ratio`` times faster; who goes first alternates.
    Both see the same machine load, and each pays the cache refill after the other's turn once per
    turn. Returns the summed wall and CPU seconds of each tool."""
    tot = dict.fromkeys(("avforge_wall_s", "avforge_cpu_s", "lhotse_wall_s", "lhotse_cpu_s"), 0.0)
    n_lhotse = len(specs) // ratio
    for k, first in enumerate(range(0, n_lhotse, chunk)):
        last = min(first + chunk, n_lhotse)
        order = ("avforge", "lhotse") if k % 2 == 0 else ("lhotse", "avforge")
        for tool in order:
            if tool == "avforge":
                wall, cpu = time_avforge(renderer, specs[first * ratio : last * ratio], batch)
            elif worker is not None:
                wall, cpu = time_lhotse(worker, name, first, last)
            else:
                continue
            tot[f"{tool}_wall_s"] += wall
            tot[f"{tool}_cpu_s"] += cpu
    return tot


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, {platform.system()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lhotse-python", help="python of an environment with lhotse installed")
    parser.add_argument("--count", type=int, default=288, help="Lhotse recipes per setting")
    parser.add_argument(
        "--rounds", type=int, default=7, help="interleaved rounds (medians reported)"
    )
    parser.add_argument("--chunk", type=int, default=24, help="Lhotse recipes per turn")
    parser.add_argument(
        "--batch",
        type=int,
        default=8,
        help="avforge recipes per render_audio_batch call, as the training loader renders its "
        "batches (default 8, training's default batch size; 1: render_audio per recipe)",
    )
    parser.add_argument(
        "--turn-ratio",
        type=int,
        help="avforge recipes per Lhotse recipe in a turn (default: 10 dry, 3 reverberant, the "
        "target ratios, so turns last about as long for both; 1: equal counts)",
    )
    parser.add_argument("--rooms", type=int, default=12)
    parser.add_argument("--out", default="bench_mixing.json")
    parser.add_argument("--keep", action="store_true", help="keep the scratch corpus and WAVs")
    parser.add_argument("--lhotse-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lhotse_worker:
        lhotse_worker(args.lhotse_worker)
        return

    import numpy as np

    from manifests.schema import MixTask
    from mixing.config import FaceStream, RenderConfig, preset_config
    from mixing.render import MixtureRenderer
    from mixing.sampler import RecipeSampler

    work = Path(tempfile.mkdtemp(prefix="avforge-bench-mixing-"))
    corpus = build_bench_corpus(work, args.rooms)
    wavs = export_wavs(corpus, work / "wav")
    render = RenderConfig(face_stream=FaceStream.NONE)
    base = preset_config(
        MixTask.CUSTOM,
        n_speakers=2,
        duration_s=3.0,
        snr_db_range=(0.0, 20.0),
        seed=1,
        render=render,
    )
    settings = {"dry": base, "reverb": base.with_overrides(p_reverb=1.0)}
    ratios = {"dry": args.turn_ratio or 10, "reverb": args.turn_ratio or 3}
    renderer = MixtureRenderer(str(corpus), render)
    results: dict[str, dict] = {}
    job = {"sets": {}, "rounds": args.rounds, "n_compare": 20, "out_dir": str(work)}
    specs_by = {}
    for name, cfg in settings.items():
        # avforge renders ratio x count recipes a round; Lhotse the first count of them
        specs = RecipeSampler.from_corpus(str(corpus), cfg).take(args.count * ratios[name])
        specs_by[name] = specs
        for spec in specs[:5]:
            renderer.render_audio(spec)
        results[name] = {
            key: []
            for key in (
                "avforge_mixtures_per_s",
                "avforge_cpu_mixtures_per_s",
                "lhotse_mixtures_per_s",
                "lhotse_cpu_mixtures_per_s",
                "speedup_per_round",
                "cpu_speedup_per_round",
            )
        }
        job["sets"][name] = [
            {
                "clips": [wavs[c] for c in s.clip_ids],
                "offsets": s.offsets_s,
                "duration": s.duration_s,
                "sir": -s.gains_db[1],
                "noise": wavs[s.noise_id],
                "noise_offset": s.noise_offset_s,
                "snr": s.noise_snr_db,
                "rirs": [wavs[r] if r else None for r in s.rir_ids],
            }
            for s in specs[: args.count]
        ]
    lhotse_python = args.lhotse_python
    if lhotse_python is None:
        try:
            import lhotse  # noqa: F401

            lhotse_python = sys.executable
        except ImportError:
            print("lhotse not available: measuring avforge only", file=sys.stderr)
    lhotse_version = None
    worker = None
    if lhotse_python:
        job_path = work / "job.json"
        job_path.write_text(json.dumps(job))
        worker = subprocess.Popen(
            [lhotse_python, __file__, "--lhotse-worker", str(job_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        lhotse_version = json.loads(worker.stdout.readline())["lhotse_version"]  # type: ignore[union-attr]
    # interleave the two tools chunk by chunk, so that both see the same machine load
    for _ in range(args.rounds):
        for name in settings:
            tot = run_round(
                renderer, specs_by[name], worker, name, args.chunk, args.batch, ratios[name]
            )
            r = results[name]
            for tool in ("avforge", "lhotse") if worker is not None else ("avforge",):
                count = args.count * ratios[name] if tool == "avforge" else args.count
                r[f"{tool}_mixtures_per_s"].append(count / tot[f"{tool}_wall_s"])
                r[f"{tool}_cpu_mixtures_per_s"].append(count / tot[f"{tool}_cpu_s"])
            if worker is not None:
                for key, unit in (("speedup_per_round", ""), ("cpu_speedup_per_round", "cpu_")):
                    rates = [
                        r[f"{tool}_{unit}mixtures_per_s"][-1] for tool in ("avforge", "lhotse")
                    ]
                    r[key].append(rates[0] / rates[1])
    if worker is not None:
        worker.stdin.close()  # type: ignore[union-attr]
        worker.wait(timeout=60)
        for name in settings:
            r = results[name]
            theirs = np.load(work / f"lhotse_{name}.npy")
            ours = np.stack(
                [renderer.render_audio(s)[0] for s in specs_by[name][: job["n_compare"]]]
            )
            n = min(theirs.shape[1], ours.shape[1])
            corr = [
                float(np.corrcoef(a[:n], b[:n])[0, 1]) for a, b in zip(ours, theirs, strict=True)
            ]
            r["mixture_correlation_median"] = float(np.median(corr))
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average": os.getloadavg(),
        "count": args.count,
        "batch": args.batch,
        "chunk": args.chunk,
        "turn_ratios": ratios,
        "rounds": args.rounds,
        "lhotse_version": lhotse_version,
        "results": results,
    }
    Path(args.out).write_text(json.dumps(report, indent=2))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"({report['date']}, {report['machine']}, load {report['load_average']})")
    print(
        "| setting | avforge mixtures/s (wall; CPU) | Lhotse mixtures/s (wall; CPU) "
        "| speed-up wall, median of rounds (range) | speed-up CPU | corr. |"
    )
    print("| --- | --- | --- | --- | --- | --- |")

    def med(values: list[float]) -> float:
        return float(np.median(values))

    for name, r in results.items():
        ours = f"{med(r['avforge_mixtures_per_s']):.0f}; {med(r['avforge_cpu_mixtures_per_s']):.0f}"
        if worker is None:
            print(f"| 2S+noise 3 s, {name} | {ours} | - | - | - | - |")
            continue
        theirs = f"{med(r['lhotse_mixtures_per_s']):.0f}; {med(r['lhotse_cpu_mixtures_per_s']):.0f}"
        wall = r["speedup_per_round"]
        print(
            f"| 2S+noise 3 s, {name} | {ours} | {theirs} | {med(wall):.1f}x "
            f"({min(wall):.1f}-{max(wall):.1f}) | {med(r['cpu_speedup_per_round']):.1f}x "
            f"| {r['mixture_correlation_median']:.3f} |"
        )


if __name__ == "__main__":
    main()
