"""Denoise camera raw files from the command line (``isp-denoise``; ``python predict.py`` in a checkout).

    isp-denoise INPUT [INPUT ...] --out-dir DIR [--format dng|tiff|png] [--ckpt PATH]
                [--tile 1024] [--overlap 192] [--device auto|cpu|cuda] [--overwrite]
                [--threads N] [--parallel tiles|ops] [--precision auto|fp32|bf16|fp16]
                [--compile | --fuse-epilogues] [--ensemble 1|2]

INPUT is a raw file or a folder (searched recursively for raw extensions). Each input becomes
``DIR/<stem>.<ext>``: by default a DNG holding the denoised mosaic in the input's sensor frame with
its CFA, levels, colour matrix, white balance, make/model and EXIF; ``tiff`` (16-bit) and ``png``
(8-bit) hold an sRGB rendering by LibRaw. Without ``--ckpt`` the shipped default model is used.

On the CPU the default, ``--parallel auto``, denoises one tile at a time on as many torch threads
as there are free cores, re-counted before each tile (:class:`isp.predict.cores.CoreGovernor`:
the busy CPU time of the machine minus this process's own): two threads on an idle 2-core machine,
one as soon as another job takes a core (torch's threads stall on a preempted peer; docs/
benchmarks.md, "Inference"), at most ``--threads``. ``--parallel ops`` keeps ``--threads`` torch
threads (default: the free cores at the start); ``--parallel tiles`` runs that many tiles at once
with one torch thread each. On CUDA the net runs in
``channels_last`` under bf16 autocast (fp16 where bf16 is unsupported) unless ``--precision fp32``;
tiles are ``channels_last`` on the CPU too (1.3x faster there), under bf16 autocast where the CPU
has AMX tiles (:func:`isp.predict.cores.amx_bf16`; a 24-MP DNG 2.5x as fast end to end, the
development set within 0.01 dB of float32), else in float32.

Exit status: 0 when every input was written; 1 when any input failed or was skipped (each is
reported with its reason; the others are still written); 2 for bad arguments, an unusable
``--out-dir`` or an unusable checkpoint (both checked before any file is denoised); 130 after
SIGINT (Ctrl-C) and 143 after SIGTERM, with one line and no temporary file left. Temporary files
that a killed run left in ``--out-dir`` are removed by the next run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from isp.predict import (
    FORMATS,
    OVERLAP,
    TILE,
    OutputExistsError,
    denoise_file,
    discover_inputs,
    output_path,
    remove_stale_temporaries,
    size_multiple,
    tile_grid,
    write_output,
)
from isp.predict.cores import CoreGovernor, affinity_cores, amx_bf16, free_cores
from isp.predict.ensemble import ENSEMBLES
from isp.raw import RawWarning
from isp.weights import CheckpointError, load_model


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(prog="isp-denoise", description=__doc__.split("\n\n")[0])
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="raw files or folders (recursed)")
    p.add_argument("--out-dir", required=True, type=Path, help="where the outputs go (created)")
    p.add_argument("--format", default="dng", choices=sorted(FORMATS), help="default: dng")
    p.add_argument("--ckpt", type=Path, default=None, help="train.py .ckpt or .pt+.json (default: shipped)")
    p.add_argument("--tile", type=int, default=2 * TILE, help=f"tile size, even mosaic pixels ({2 * TILE})")
    p.add_argument("--overlap", type=int, default=2 * OVERLAP, help=f"tile overlap, even ({2 * OVERLAP})")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: auto")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (never an input)")
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU cores to use: --parallel auto uses at most this many (default 0: every core this "
        "process may use); ops and tiles use exactly this many (default 0: the free cores)",
    )
    p.add_argument(
        "--parallel",
        default="auto",
        choices=["auto", "ops", "tiles"],
        help="CPU: one tile at a time on torch threads re-chosen before each tile from the cores other "
        "jobs leave free, at most --threads (auto, default); one tile at a time on --threads torch "
        "threads (ops); or --threads tiles at once, one thread each (tiles)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "bf16", "fp16"],
        help="autocast dtype (auto: bf16 on CUDA, fp16 without bf16 support; on the CPU bf16 where it "
        "has AMX tiles (2.5x as fast end to end), else fp32)",
    )
    compile_group = p.add_mutually_exclusive_group()
    compile_group.add_argument(
        "--compile", action="store_true", help="torch.compile the network (about 30 s per process first)"
    )
    compile_group.add_argument(
        "--fuse-epilogues",
        action="store_true",
        help="compile only the LeakyReLU epilogues, MSConv2d's side terms in their pass (about 4 s per "
        "process first; then bf16 tiles run 1.1-1.3x as fast: pays on folders)",
    )
    p.add_argument(
        "--ensemble",
        type=int,
        default=2,
        choices=ENSEMBLES,
        help="average the prediction on the frame and on the frame turned by 180 degrees (2, default: "
        "+0.11 dB on the development set) or take the first alone (1: half the time)",
    )
    return p


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    for name in ("tile", "overlap"):
        value = getattr(args, name)
        if value < (2 if name == "tile" else 0) or value % 2:
            least = 2 if name == "tile" else 0
            p.error(f"--{name} must be an even number of mosaic pixels (>= {least}); got {value}")
    if args.overlap >= args.tile:
        p.error(f"--overlap ({args.overlap}) must be smaller than --tile ({args.tile})")
    if args.threads < 0:
        p.error(f"--threads must be >= 0; got {args.threads}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")


class Terminated(BaseException):
    """Raised in the main thread by SIGTERM so that every ``finally`` (temp-file removal) runs."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    def handler(signum, frame):
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def printable(text: object) -> str:
    r"""``text`` with control characters escaped (``\n``, ``\x1b``), safe to show in a terminal.

    Example:
        >>> printable("a\x1b[2Jb\nc.dng")
        'a\\x1b[2Jb\\nc.dng'
    """
    return "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in str(text))


def _say(text: object) -> str:
    return escape(printable(text))


def _check_out_dir(out_dir: Path) -> str | None:
    """Why ``out_dir`` cannot take the outputs (None when it can): checked before any network work."""
    shown = repr(str(out_dir))
    if out_dir.exists() and not out_dir.is_dir():
        return f"--out-dir {shown} is a file, not a folder"
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"--out-dir {shown} cannot be created: {err.strerror or err}"
    try:
        fd, probe = tempfile.mkstemp(prefix=".isp-probe-", dir=out_dir)
    except OSError as err:
        return f"--out-dir {shown} is not writable: {err.strerror or err}"
    os.close(fd)
    os.unlink(probe)
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit status (130 after SIGINT, 143 after SIGTERM)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(parser, args)
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        with _sigterm_raises():
            return _run(parser, args, console)
    except KeyboardInterrupt:
        _remove_own_temporaries(args.out_dir)
        console.print("[red]interrupted[/] (SIGINT): stopped; finished outputs kept, no partial file left")
        return 130
    except Terminated:
        _remove_own_temporaries(args.out_dir)
        console.print("[red]terminated[/] (SIGTERM): stopped; finished outputs kept, no partial file left")
        return 143


def _remove_own_temporaries(out_dir: Path) -> None:
    """This run's temporary files, after a signal: one can land before a writer's cleanup is armed.

    ``atomic_output`` removes its temporary file when the block raises, but a signal between the
    file's creation and the ``try`` (or inside the ``finally``, before the unlink) left it behind
    (seen once in the SIGTERM test: ``.f01.dng.isp-<pid>-<random>.tmp``).
    """
    with contextlib.suppress(OSError):
        remove_stale_temporaries(out_dir)  # ours (this pid) and dead runs'; live runs' are kept


def execution_plan(
    args: argparse.Namespace, cuda_available: bool, bf16_supported: bool, cpu_bf16: bool = False
) -> dict:
    """Where and how the net runs, from the arguments and what the machine offers.

    ``bf16_supported``: the CUDA device's; ``cpu_bf16``: the CPU convolves bfloat16 on AMX tiles
    (:func:`isp.predict.cores.amx_bf16`), where ``--precision auto`` picks bf16 autocast.

    Returns:
        ``device``, torch ``threads`` (the first tile's), tile ``workers``, the thread ``governor``
        (:class:`~isp.predict.cores.CoreGovernor` under ``--parallel auto`` on the CPU, else None),
        ``autocast_dtype`` and ``channels_last``.
    """
    use_cuda = args.device == "cuda" or (args.device == "auto" and cuda_available)
    governor = None
    if not use_cuda and args.parallel == "auto":
        most = min(args.threads, affinity_cores()) if args.threads else affinity_cores()
        cores = min(most, free_cores())
        governor = CoreGovernor(cores=most, start=cores)
    else:
        cores = args.threads or free_cores()
    precision = args.precision
    if precision == "auto":
        if use_cuda:
            precision = "bf16" if bf16_supported else "fp16"
        else:
            precision = "bf16" if cpu_bf16 else "fp32"
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    tiles = not use_cuda and args.parallel == "tiles"
    return {
        "device": torch.device("cuda" if use_cuda else "cpu"),
        "threads": 1 if tiles else cores,
        "workers": cores if tiles else 1,
        "governor": governor,
        "autocast_dtype": dtypes[precision],
        "channels_last": True,  # CPU too: 1.3x faster tiles (isp.predict.frame.denoise_frame)
    }


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, console: Console) -> int:
    cuda = torch.cuda.is_available()
    plan = execution_plan(args, cuda, cuda and torch.cuda.is_bf16_supported(), amx_bf16())
    device = plan["device"]
    if device.type == "cpu":
        torch.set_num_threads(plan["threads"])
    created = not args.out_dir.exists()
    problem = _check_out_dir(args.out_dir)
    if problem is not None:
        console.print(f"[red]error:[/] {_say(problem)}")
        return 2
    for stale in remove_stale_temporaries(args.out_dir):
        console.print(f"removed {_say(stale)} (a temporary file left by an interrupted run)")
    try:
        loaded = load_model(args.ckpt)
    except CheckpointError as err:
        console.print(f"[red]error:[/] {_say(err)}")
        if created:  # leave no trace of a run that did not start
            with contextlib.suppress(OSError):
                args.out_dir.rmdir()
        return 2
    net = loaded.net.to(device)
    if plan["channels_last"]:
        net = net.to(memory_format=torch.channels_last)
    if args.fuse_epilogues:
        # compile in this process: Inductor's worker processes would count as other jobs' load for
        # the core governor, which would then run tiles on one thread (a folder of three 24-MP files:
        # 35.0 s against 30.3 s)
        import torch._inductor.config as inductor_config

        inductor_config.compile_threads = 1
    if args.compile:
        net = torch.compile(net)
    elif args.fuse_epilogues:
        if not hasattr(net, "fuse_epilogues"):
            parser.error(f"--fuse-epilogues: {type(net).__name__} has no fuse_epilogues(); use --compile")
        net.fuse_epilogues()
    tile, overlap = args.tile // 2, args.overlap // 2  # packed pixels
    try:
        tile_grid(tile, tile, overlap, align=size_multiple(net))
    except ValueError:
        align = 2 * size_multiple(net)
        parser.error(
            f"--tile {args.tile} / --overlap {args.overlap} do not suit this model: its tiles align "
            f"to {align} mosaic pixels: --tile and --tile minus --overlap must be >= {align}"
        )
    files, missing = discover_inputs(args.inputs)
    failures: list[tuple[Path, str]] = list(missing)
    if not files and not missing:
        failures.append((Path(" ".join(args.inputs)), "no raw files found"))
    for path, reason in failures:
        console.print(f"[red]skipped[/] {_say(path)}: {_say(reason)}")
    written: list[Path] = []
    inputs = {p.resolve() for p in files}
    claimed: dict[Path, Path] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    start = time.perf_counter()
    with Progress(*columns, console=console, transient=False) as progress:
        overall = progress.add_task("all files", total=len(files))
        for path in files:
            final = output_path(path, args.out_dir, args.format)
            task = progress.add_task(_say(path.name), total=None)
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    try:
                        if final.resolve() in claimed:
                            raise OutputExistsError(
                                f"{final} is also the output of {claimed[final.resolve()]}"
                            )
                        claimed[final.resolve()] = path
                        if final.resolve() in inputs:
                            raise OutputExistsError(
                                f"refusing to write {str(final)!r}: it is one of the input files"
                            )
                        if final.exists() and not args.overwrite:
                            raise OutputExistsError(
                                f"output {str(final)!r} exists; pass --overwrite to replace it"
                            )
                        source, mosaic = denoise_file(
                            net,
                            path,
                            data=loaded.data,
                            tile=tile,
                            overlap=overlap,
                            device=device,
                            progress=lambda done, total, t=task: progress.update(
                                t, completed=done, total=total
                            ),
                            workers=plan["workers"],
                            governor=plan["governor"],
                            autocast_dtype=plan["autocast_dtype"],
                            channels_last=plan["channels_last"],
                            ensemble=args.ensemble,
                        )
                        write_output(
                            final, source, mosaic, args.format, overwrite=args.overwrite, protected=files
                        )
                        written.append(final)
                    finally:
                        for w in caught:
                            text = str(w.message)
                            if not isinstance(w.message, RawWarning) and str(path) not in text:
                                text = f"{str(path)!r}: {text}"
                            progress.console.print(f"[yellow]warning[/] {_say(text)}")
            except (ValueError, OSError) as err:  # RawError, OutputExistsError, CheckpointError, I/O
                failures.append((path, str(err)))
                progress.console.print(f"[red]skipped[/] {_say(path)}: {_say(err)}")
            finally:
                progress.remove_task(task)
                progress.advance(overall)
    elapsed = time.perf_counter() - start
    console.print(f"wrote {len(written)} file(s) to {_say(args.out_dir)} in {elapsed:.1f} s")
    if failures:
        console.print(f"[red]{len(failures)} input(s) failed or skipped[/]")
    return 1 if failures else 0
