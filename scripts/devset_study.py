"""The conditioning study on the production data, scored on the development set.

    python scripts/devset_study.py                         # train, score, report (docs/devset_study.md)
    python scripts/devset_study.py --jobs 2 --seeds 0 1    # the same, explicitly
    python scripts/devset_study.py --phases score report   # re-score and re-report trained runs

Every (variant, seed) is one Lightning CLI run, ``train.py fit --config configs/production.yaml
--config configs/experiment/devset/base.yaml --config configs/experiment/devset/<variant>.yaml
--seed_everything <seed>``: the production data and noise model (real banding on 60% of the
shots), a UNet of base width 16 trained from scratch, only the conditioning and its side inputs
varied. Runs go to ``runs/devset_study/<variant>/seed<k>`` (TensorBoard events, checkpoints, log);
a run with a final checkpoint is not trained again, so an interrupted study resumes.

Each final network is scored with ``../shared/devset/score.py --ckpt`` on both sets. The report
gives the validation PSNR curve of every run (from its TensorBoard events: has it flattened?),
the dev-set results per variant as mean and spread over seeds, parameters and the step time
(forward, loss, backward, Adam on one batch, the variants interleaved; medians), and answers the
seed's questions with those numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs" / "experiment" / "devset"
VARIANTS = [
    "msconv",
    "tile_concat",
    "film",
    "none",
    "msconv_scalars",
    "msconv_flat",
    "msconv_noisemap",
    "film_noisemap",
    "msconv_film",
    "film_msconv",
    "msconv_replicate",
]
LABELS = {
    "msconv": "msconv (default)",
    "tile_concat": "tile_concat",
    "film": "film",
    "none": "none (blind)",
    "msconv_scalars": "msconv, no row/column vectors",
    "msconv_flat": "msconv, vectors flattened",
    "msconv_noisemap": "msconv + noise map",
    "film_noisemap": "film + noise map",
    "msconv_film": "msconv + FiLM gain",
    "film_msconv": "FiLM on MSConv2d",
    "msconv_replicate": "msconv, replicate padding",
}
SETS = ("physical", "iso-overstated")


def run_dir(work: Path, variant: str, seed: int) -> Path:
    return work / variant / f"seed{seed}"


def final_checkpoint(work: Path, variant: str, seed: int) -> Path:
    return run_dir(work, variant, seed) / "checkpoints" / "last.ckpt"


def train_command(work: Path, variant: str, seed: int, extra: list[str]) -> list[str]:
    out = run_dir(work, variant, seed)
    return [
        sys.executable,
        str(ROOT / "train.py"),
        "fit",
        "--config",
        str(ROOT / "configs" / "production.yaml"),
        "--config",
        str(CONFIGS / "base.yaml"),
        "--config",
        str(CONFIGS / f"{variant}.yaml"),
        "--seed_everything",
        str(seed),
        "--trainer.logger.init_args.save_dir",
        str(work),
        "--trainer.logger.init_args.name",
        variant,
        "--trainer.logger.init_args.version",
        f"seed{seed}",
        "--checkpoint.dirpath",
        str(out / "checkpoints"),
        "--trainer.enable_progress_bar",
        "false",
        *extra,
    ]


def _train_one(work: Path, variant: str, seed: int, extra: list[str]) -> dict:
    out = run_dir(work, variant, seed)
    record = out / "train.json"
    if final_checkpoint(work, variant, seed).is_file() and record.is_file():
        return json.loads(record.read_text())
    out.mkdir(parents=True, exist_ok=True)
    cmd = train_command(work, variant, seed, extra)
    resume = final_checkpoint(work, variant, seed).is_file()  # killed after a checkpoint: go on from it
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    with open(out / "train.log", "a") as log:
        log.write(f"$ {shlex.join(cmd)}\n")
        log.flush()
        rc = subprocess.call(
            cmd + (["--ckpt_path", "last"] if resume else []),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if rc != 0 or not final_checkpoint(work, variant, seed).is_file():
        raise RuntimeError(f"{variant} seed {seed}: training failed (exit {rc}); see {out / 'train.log'}")
    info = {
        "variant": variant,
        "seed": seed,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "command": shlex.join(cmd),
    }
    record.write_text(json.dumps(info, indent=1))
    print(f"{variant} seed {seed}: trained in {info['train_seconds']:.0f} s", flush=True)
    return info


def train(args: argparse.Namespace) -> None:
    jobs = [(v, s) for s in args.seeds for v in args.variants]  # seed-major: whole seeds first
    with ThreadPoolExecutor(args.jobs) as pool:
        for f in [pool.submit(_train_one, args.work, v, s, args.extra) for v, s in jobs]:
            f.result()


def _score_one(args: argparse.Namespace, variant: str, seed: int, which: str) -> list[dict]:
    out = run_dir(args.work, variant, seed) / f"devset_{which}.json"
    ckpt = final_checkpoint(args.work, variant, seed)
    if out.is_file() and out.stat().st_mtime > ckpt.stat().st_mtime and json.loads(out.read_text()):
        return json.loads(out.read_text())
    cmd = [
        sys.executable,
        str(args.devset / "score.py"),
        "--set",
        which,
        "--json",
        str(out),
        "--ckpt",
        str(ckpt),
        "--threads",
        "1",
        *(["--only", args.only] if args.only else []),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(
            f"{variant} seed {seed} {which}: score.py failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
        )
    print(f"{variant} seed {seed} {which}: {done.stdout.strip().splitlines()[-1]}", flush=True)
    return json.loads(out.read_text())


def score(args: argparse.Namespace) -> None:
    jobs = [(v, s, w) for s in args.seeds for v in args.variants for w in SETS]
    with ThreadPoolExecutor(args.jobs) as pool:
        for f in [pool.submit(_score_one, args, v, s, w) for v, s, w in jobs]:
            f.result()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--phases", nargs="+", default=["train", "score", "report"], choices=["train", "score", "report"]
    )
    p.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--jobs", type=int, default=2, help="runs in parallel (default 2: one per core)")
    p.add_argument("--work", type=Path, default=ROOT / "runs" / "devset_study")
    p.add_argument("--devset", type=Path, default=ROOT.parent / "shared" / "devset")
    p.add_argument(
        "--out", type=Path, default=ROOT / "docs", help="devset_study.md/.json and the plot go here"
    )
    p.add_argument(
        "--only", default="", help="score only the dev-set cases whose name holds this (a smoke test)"
    )
    p.add_argument("extra", nargs="*", help="more Lightning CLI options for every run, after --")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.work = args.work.resolve()
    if "train" in args.phases:
        train(args)
    if "score" in args.phases:
        if not (args.devset / "score.py").is_file():
            raise SystemExit(f"{args.devset / 'score.py'}: no development set there (--devset)")
        score(args)
    if "report" in args.phases:
        from devset_study_report import write

        write(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
