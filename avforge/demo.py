"""``avforge demo``: the main job end to end on a tiny corpus of real talk videos, through the public
commands.

Contract: ``run_demo(DemoOptions(out, quick, keep_server))`` returns the exit code (0 when every step
worked). Each step prints one line when it starts and one with its wall and CPU time when it ends;
every stage runs as the same ``avforge`` verb a user types, in a child process of the console script
(its progress bars and errors appear as they would for the user, and the command line is printed):

1. build real talk videos (``avforge.demo_videos.build_demo_videos``): the bundled real clips labelled
   ``keep`` as positives, and one negative of each reject reason made from real clips with
   ``avforge.variants`` (dubbed, still face, two faces, no face, silence, babble / music at 0 dB),
   each with its ground-truth JSON;
2. serve them on 127.0.0.1 (``avforge.synth.LoopbackServer``) and write ``OUT/urls.txt``;
3. write the configs into ``OUT/configs/`` (``avforge.demo_config``);
4. ``avforge curate`` (yt-dlp over loopback, LocalCluster of 2 workers) -> ``OUT/corpus``;
5. ``avforge report``; 6. ``avforge noises add`` (bundled noise and music); 7. ``avforge rirs build``;
8. ``avforge mix freeze`` -> ``OUT/eval_set``; 9-10. ``avforge train`` (audio-only, audio-visual);
11. ``avforge evaluate`` -> ``OUT/evaluation``; 12. ``avforge mix render`` -> ``OUT/examples*``;
13. the final table (``avforge.demo_config.summary``: curation per video kind against the ground truth).

Failure: the first step that fails (a verb's non-zero exit, a missing output, ffmpeg failing on a
variant) stops the demo with ``demo failed at step N (name): reason`` and exit code 1; the loopback
server is always stopped (``--keep-server`` keeps it up after a successful run until Ctrl-C).
"""

from __future__ import annotations

import os
import resource
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from avforge.core import assets
from avforge.demo_config import (
    FULL,
    QUICK,
    DemoConfigs,
    DemoSize,
    StepTiming,
    format_table,
    summarize_demo,
    write_demo_configs,
)

if TYPE_CHECKING:
    from avforge.synth import LoopbackServer

T = TypeVar("T")
STEPS = 13
BUILD_STEP = "build real talk videos (bundled clips + ffmpeg variants)"
CURATE_STEP = "curate the videos (yt-dlp over loopback, LocalCluster of 2 workers)"


class DemoError(RuntimeError):
    """A demo step failed; the message says which step and why."""


@dataclass(frozen=True)
class DemoOptions:
    out: Path
    """Demo folder (videos/, configs/, corpus/, runs/, evaluation/, examples*/)."""
    quick: bool = False
    """Fewer videos (3 positives instead of 9) and far fewer training steps (for tests)."""
    keep_server: bool = False
    """Keep serving the videos after the demo, until Ctrl-C."""

    @property
    def size(self) -> DemoSize:
        return QUICK if self.quick else FULL


def _cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def avforge_command() -> list[str]:
    """How to start the ``avforge`` console script of this interpreter's environment."""
    script = Path(sys.executable).with_name("avforge")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from avforge.cli import main; main()"]


def run_verb(*args: str, env: dict[str, str] | None = None) -> None:
    """Run ``avforge ARGS`` as a child process with the terminal's stdout/stderr; raise on failure.

    ``env``: extra environment variables of the child (printed with the command line).
    """
    extra = env or {}
    prefix = "".join(f"{k}={shlex.quote(v)} " for k, v in extra.items())
    typer.echo(f"      $ {prefix}avforge {shlex.join(args)}", err=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **extra}
    code = subprocess.run([*avforge_command(), *args], env=env, check=False).returncode
    if code != 0:
        raise DemoError(f"`avforge {args[0]}` exited with status {code} (its message is above)")


class StepRunner:
    """Numbers the steps, prints a line per step with elapsed time, and records timings."""

    def __init__(self) -> None:
        self.timings: list[StepTiming] = []
        self.start = time.monotonic()

    def __call__(self, name: str, action: Callable[[], T]) -> T:
        index = len(self.timings) + 1
        typer.echo(f"[{index:2d}/{STEPS}] {name} ...", err=True)
        wall0, cpu0 = time.monotonic(), _cpu_s()
        try:
            result = action()
        except (DemoError, OSError) as exc:
            raise DemoError(f"demo failed at step {index} ({name}): {exc}") from None
        wall, cpu = time.monotonic() - wall0, _cpu_s() - cpu0
        self.timings.append(StepTiming(name, wall, cpu))
        total = time.monotonic() - self.start
        typer.echo(
            f"[{index:2d}/{STEPS}] {name}: done in {wall:.1f} s (CPU {cpu:.1f} s); "
            f"elapsed {total:.0f} s",
            err=True,
        )
        return result


def _expect(path: Path) -> Path:
    if not path.exists():
        raise DemoError(f"expected output {path} is missing")
    return path


def _build_videos(out: Path, quick: bool) -> list[Path]:
    from avforge.demo_videos import build_demo_videos
    from avforge.variants import VariantError

    def show(path: Path, truth: dict[str, Any]) -> None:
        expected = truth["expected_reason"] or "keep"
        typer.echo(
            f"      {path.name}: {truth['sections'][0]['kind']}, {truth['duration_s']:.2f} s, "
            f"from {' + '.join(truth['clips'])} ({truth['variant']}); expect {expected}",
            err=True,
        )

    try:
        return build_demo_videos(out / "videos", quick=quick, on_video=show)
    except VariantError as exc:
        raise DemoError(str(exc)) from None


def _write_noise_lists(out: Path) -> tuple[Path, Path]:
    lists = out / "configs"
    noise, music = lists / "noise_files.txt", lists / "music_files.txt"
    for path, kind in ((noise, "noise"), (music, "music")):
        path.write_text("".join(f"{assets.audio_path(n)}\n" for n in assets.noise_files(kind)))
    return noise, music


def _pipeline(opts: DemoOptions, step: StepRunner, urls: Path, configs: DemoConfigs) -> list[Path]:
    """Steps 4-12 (the public commands); returns the example folders."""
    out, size = opts.out, opts.size
    corpus = str(out / "corpus")
    cluster = str(configs.cluster)
    threads = {"OMP_NUM_THREADS": str(size.torch_threads)}
    step(
        CURATE_STEP,
        lambda: run_verb(
            "curate",
            str(urls),
            "--out",
            corpus,
            "--config",
            str(configs.curate),
            "--cluster",
            cluster,
        ),
    )
    step("write the curation report", lambda: run_verb("report", corpus))
    noise, music = _write_noise_lists(out)

    def add_noises() -> None:
        for listing, kind in ((noise, "noise"), (music, "music")):
            run_verb(
                "noises", "add", str(listing), "--out", corpus, "--kind", kind, "--split", "train"
            )

    step("register the bundled noise and music", add_noises)
    step(
        f"build an RIR bank ({size.rooms} rooms)",
        lambda: run_verb(
            "rirs", "build", "--out", corpus, "--config", str(configs.rirs), "--cluster", cluster
        ),
    )
    eval_set = str(out / "eval_set")
    step(
        f"freeze the evaluation set ({size.eval_mixtures} mixtures)",
        lambda: run_verb(
            "mix",
            "freeze",
            corpus,
            "--out",
            eval_set,
            "--count",
            str(size.eval_mixtures),
            "--config",
            str(configs.mixing_eval),
        ),
    )
    for label, config in (
        ("audio-only", configs.train_audio_only),
        ("audio-visual", configs.train_audio_visual),
    ):
        step(
            f"train the {label} model ({size.train_steps} steps)",
            lambda config=config: run_verb(
                "train", "--config", str(config), "--resume", "never", env=threads
            ),
        )

    def evaluate() -> None:
        checkpoints = [
            str(_expect(out / "runs" / run / "checkpoints" / "last.ckpt"))
            for run in ("audio_only", "audio_visual")
        ]
        evaluation = str(out / "evaluation")
        run_verb(
            "evaluate", *checkpoints, "--mixtures", eval_set, "--corpus", corpus,
            "--out", evaluation, env=threads,
        )  # fmt: skip

    step("evaluate both models", evaluate)
    examples = [out / "examples", out / "examples_noisy_reverb"]

    def render_examples() -> None:
        count = str(size.examples)
        run_verb(
            "mix",
            "render",
            corpus,
            "--out",
            str(examples[0]),
            "--recipes",
            eval_set,
            "--count",
            count,
        )
        config = str(configs.mixing_examples)
        run_verb(
            "mix", "render", corpus, "--out", str(examples[1]), "--config", config, "--count", count
        )

    step("render example mixtures", render_examples)
    return sorted(p for folder in examples for p in _expect(folder).iterdir() if p.is_dir())


def _serve_until_interrupted(base_url: str) -> None:
    # Ctrl-C must stop it even when the demo was started with SIGINT ignored (a background job of a
    # non-interactive shell, nohup): Python keeps an inherited SIG_IGN, and the wait would never end.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    typer.echo(f"serving the demo videos at {base_url}/ (Ctrl-C to stop)", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        typer.echo("stopped", err=True)


def _summarise(out: Path, step: StepRunner, examples: list[Path], train_steps: int) -> str:
    from manifests import ManifestError

    try:
        return format_table(summarize_demo(out, step.timings, examples, CURATE_STEP, train_steps))
    except (ManifestError, KeyError, ValueError) as exc:
        raise DemoError(f"cannot read the demo's outputs back: {exc!r}") from None


def _run_steps(opts: DemoOptions, step: StepRunner, server: LoopbackServer) -> str:
    """Every step; returns the final table."""
    out = opts.out
    videos = step(BUILD_STEP, lambda: _build_videos(out, opts.quick))
    urls = out / "urls.txt"

    def serve() -> None:
        base_url = server.start()
        urls.write_text("".join(f"{server.url(v.name)}\n" for v in videos))
        typer.echo(f"      serving at {base_url}/; URL list {urls}", err=True)

    step("serve them on 127.0.0.1", serve)
    configs = step("write the configs", lambda: write_demo_configs(out, opts.size))
    examples = _pipeline(opts, step, urls, configs)
    return step("summarise", lambda: _summarise(out, step, examples, opts.size.train_steps))


def run_demo(opts: DemoOptions) -> int:
    """Run the demo (see the module docstring); returns the process exit code."""
    from avforge.synth import LoopbackServer

    out = opts.out.resolve()
    opts = DemoOptions(out, opts.quick, opts.keep_server)
    try:
        (out / "videos").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        typer.echo(f"avforge demo: cannot create the output folder: {exc}", err=True)
        return 1
    typer.echo(f"avforge demo ({opts.size.name}) into {out}", err=True)
    server = LoopbackServer(out / "videos")
    try:
        table = _run_steps(opts, StepRunner(), server)
        typer.echo(f"\navforge demo: results ({out})")
        typer.echo(table)
        if opts.keep_server:
            _serve_until_interrupted(server.base_url)
    except DemoError as exc:
        typer.echo(f"avforge demo: {exc}", err=True)
        return 1
    finally:
        server.stop()
    return 0


def register(app: typer.Typer) -> None:
    """Add the ``demo`` verb to ``app``."""

    @app.command("demo")
    def demo(
        out: Path = typer.Option(Path("avforge_demo"), "--out", help="Output folder."),
        quick: bool = typer.Option(False, "--quick", help="Smaller, faster run."),
        keep_server: bool = typer.Option(
            False, "--keep-server", help="Keep the loopback video server running at the end."
        ),
    ) -> None:
        """Build real talk videos, curate, mix, train and evaluate on a tiny local corpus, end to end."""
        raise typer.Exit(code=run_demo(DemoOptions(out, quick, keep_server)))
