"""train.py (LightningCLI) end to end on the generated sample data: every config, print_config,
resume with --ckpt_path last, predict, the missing-data error, DDP on two CPU processes."""

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from isp.lit import DenoiseModule
from isp.models import UNet
from isp.predict import denoise_file
from train import main

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
TINY = ["--model.net.init_args.base_width", "4", "--model.net.init_args.depth", "2"]


#: the composed runs: configs/trainer.yaml + a model file + a data file (+ ddp.yaml)
COMPOSED = {
    "pairs": ["trainer.yaml", "model/unet.yaml", "data/pairs.yaml"],
    "synthetic": ["trainer.yaml", "model/unet.yaml", "data/synthetic.yaml"],
    "sid_sony": ["trainer.yaml", "model/unet.yaml", "data/sid_sony.yaml"],
    "ddp": ["trainer.yaml", "model/unet.yaml", "data/sample.yaml", "ddp.yaml"],
}


def _args(tmp_path, config, root, *extra, subcommand="fit"):
    files = COMPOSED.get(config, [config])
    return [
        subcommand,
        *(a for f in files for a in ("--config", str(CONFIGS / f))),
        "--data.root",
        str(root),
        "--data.cache_dir",
        str(tmp_path / "cache"),
        "--data.num_workers",
        "0",
        "--data.crop_size",
        "16",
        "--data.eval_crop_size",
        "null",
        "--data.batch_size",
        "2",
        *TINY,
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        "--checkpoint.dirpath",
        str(tmp_path / "ckpt"),
        *extra,
    ]


@pytest.fixture(scope="module")
def sid_root(sample_root, tmp_path_factory):
    """A SID-style layout (list files, Sony/short|long with ids 0/1/2 = train/test/val) of copies
    of the sample DNGs."""
    root = tmp_path_factory.mktemp("sid")
    (root / "Sony" / "short").mkdir(parents=True)
    (root / "Sony" / "long").mkdir(parents=True)
    with open(sample_root / "pairs.csv") as f:
        rows = list(csv.DictReader(f))
    digit = {"train": "0", "test": "1", "val": "2"}
    lists = {"train": [], "val": [], "test": []}
    for i, row in enumerate(rows):
        sid = f"{digit[row['split']]}{i:04d}"
        short, long = f"Sony/short/{sid}_00_0.1s.dng", f"Sony/long/{sid}_00_10s.dng"
        shutil.copyfile(sample_root / row["noisy"], root / short)
        shutil.copyfile(sample_root / row["clean"], root / long)
        lists[row["split"]].append(f"./{short} ./{long} ISO200 F9")
    for split, lines in lists.items():
        (root / f"Sony_{split}_list.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.mark.parametrize(
    "config, extra",
    [
        ("quickstart.yaml", []),
        ("pairs", []),
        ("synthetic", ["--data.manifest", "pairs.csv"]),
        ("sid_sony", []),
        # the real two-process run is test_ddp_two_cpu_processes_match_single_process
        ("ddp", ["--trainer.devices", "1", "--trainer.strategy", "auto"]),
        # bf16 autocast (1.9x faster steps on a CPU with AMX tiles): MSConv2d's own backward under it
        ("quickstart.yaml", ["--trainer.precision", "bf16-mixed"]),
    ],
)
def test_fast_dev_run_every_config(tmp_path, sample_root, sid_root, config, extra):
    root = sid_root if config == "sid_sony" else sample_root
    cpu = ["--trainer.accelerator", "cpu"]
    cli = main(_args(tmp_path, config, root, "--trainer.fast_dev_run", "true", *cpu, *extra))
    metrics = cli.trainer.callback_metrics
    assert cli.trainer.global_step == 1
    assert cli.trainer.precision == ("bf16-mixed" if "bf16-mixed" in extra else "32-true")
    assert torch.isfinite(metrics["train/loss"]) and torch.isfinite(metrics["val/raw_psnr"])
    assert cli.model.net.conditioning == "msconv" and cli.model.net.base_width == 4


def test_print_config_resolves_defaults_and_links(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(
            [
                "fit",
                "--config",
                str(CONFIGS / "quickstart.yaml"),
                "--model.monitor",
                "val/srgb_psnr",
                "--print_config",
            ]
        )
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["net"]["class_path"] == "isp.models.UNet"
    assert cfg["model"]["net"]["init_args"]["conditioning"] == "msconv"
    assert cfg["model"]["optimizer"]["class_path"] == "torch.optim.Adam"
    assert cfg["last_checkpoint"]["filename"] == "last" and cfg["last_checkpoint"]["monitor"] is None
    assert cfg["data"]["root"] == "data/sample"
    assert cfg["model"]["monitor"] == "val/srgb_psnr"
    assert "monitor" not in cfg["checkpoint"]  # linked from model.monitor, not set twice
    assert "dirpath" not in cfg["last_checkpoint"]  # linked from checkpoint.dirpath


def test_resume_from_last_continues_and_predict(tmp_path, sample_root):
    # val every epoch; the monitored PSNR need not improve: last.ckpt must still be the latest
    common = [
        "--data.train_repeat",
        "1",
        "--trainer.check_val_every_n_epoch",
        "1",
        "--trainer.num_sanity_val_steps",
        "0",
        "--model.loss",
        "psnr",
    ]
    cli = main(_args(tmp_path, "quickstart.yaml", sample_root, *common, "--trainer.max_epochs", "2"))
    assert cli.trainer.global_step == 4  # 4 train pairs, batch 2, 2 epochs
    last = tmp_path / "ckpt" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 4
    saved = yaml.safe_load((Path(cli.trainer.log_dir) / "config.yaml").read_text())
    assert saved["model"]["net"]["init_args"]["base_width"] == 4  # the resolved config is kept

    cli = main(
        _args(
            tmp_path,
            "quickstart.yaml",
            sample_root,
            *common,
            "--trainer.max_epochs",
            "3",
            "--ckpt_path",
            "last",
        )
    )
    assert cli.trainer.global_step == 6 and cli.trainer.current_epoch == 3
    assert torch.load(last, weights_only=False)["global_step"] == 6

    cli = main(_args(tmp_path, "quickstart.yaml", sample_root, "--ckpt_path", "last", subcommand="predict"))
    preds = cli.trainer.predict_loop.predictions
    ckpt = torch.load(last, weights_only=False)["state_dict"]
    assert torch.equal(cli.model.state_dict()["net.head.weight"], ckpt["net.head.weight"])
    (batch,) = list(cli.datamodule.predict_dataloader())  # 2 test frames, eval batch 2
    assert len(preds) == 1 and [frame.path for frame, _ in preds[0]] == batch["path"]
    data = {"vector_scale": cli.datamodule.vector_scale}
    for frame, mosaic in preds[0]:  # whole files, as predict.py denoises them
        np.testing.assert_array_equal(mosaic, denoise_file(cli.model.net.eval(), frame.path, data=data)[1])

    loaded = DenoiseModule.load_from_checkpoint(last)  # the CLI's hparams rebuild the network
    assert isinstance(loaded.net, UNet) and loaded.net.base_width == 4 and loaded.loss == "psnr"
    assert torch.equal(loaded.net.head.weight, ckpt["net.head.weight"])


def test_resuming_a_run_that_spent_its_max_time_is_a_clear_error(tmp_path, sample_root):
    common = ["--data.train_repeat", "1", "--trainer.num_sanity_val_steps", "0"]
    main(_args(tmp_path, "quickstart.yaml", sample_root, *common, "--trainer.max_epochs", "1"))
    last = tmp_path / "ckpt" / "last.ckpt"
    ckpt = torch.load(last, weights_only=False)
    assert 0 < ckpt["callbacks"]["Timer"]["time_elapsed"]["train"] < 60
    ckpt["callbacks"]["Timer"]["time_elapsed"]["train"] = 3600.0  # as if it had trained an hour
    torch.save(ckpt, last)
    resume = [*common, "--trainer.max_epochs", "2", "--ckpt_path", "last"]
    with pytest.raises(ValueError, match=r"last\.ckpt: it has already trained for 1:00:00.*allows 0:30:00"):
        main(_args(tmp_path, "quickstart.yaml", sample_root, *resume, "--trainer.max_time", "00:00:30:00"))
    cli = main(_args(tmp_path, "quickstart.yaml", sample_root, *resume, "--trainer.max_time", "00:02:00:00"))
    assert cli.trainer.current_epoch == 2 and cli.trainer.global_step == 4  # resumed, not stopped


def test_last_checkpoint_keeps_epochs_after_the_last_validation(tmp_path, sample_root):
    # validation every 2 epochs, 3 epochs: the third is never validated but must not be lost
    cli = main(
        _args(
            tmp_path,
            "quickstart.yaml",
            sample_root,
            "--data.train_repeat",
            "1",
            "--trainer.check_val_every_n_epoch",
            "2",
            "--trainer.num_sanity_val_steps",
            "0",
            "--trainer.max_epochs",
            "3",
        )
    )
    assert cli.trainer.global_step == 6  # 4 train pairs, batch 2, 3 epochs
    last = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 6 and last["epoch"] == 2
    assert torch.equal(last["state_dict"]["net.head.weight"], cli.model.net.head.weight.detach())


def test_missing_data_root_is_a_clear_error(tmp_path):
    from isp.data import MissingDataError

    with pytest.raises(MissingDataError, match="data.root"):
        main(_args(tmp_path, "pairs", tmp_path / "nowhere", "--trainer.fast_dev_run", "true"))


def _csv_metrics(log_dir):
    (path,) = Path(log_dir).rglob("metrics.csv")
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {k: float(v) for row in rows for k, v in row.items() if v not in ("", None) and k != "step"}


def test_ddp_two_cpu_processes_match_single_process(tmp_path, sample_root):
    """Test metrics (including the ISO buckets) of DDP on 2 CPU processes equal a single process."""
    one = ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.strategy", "auto"]
    train = main(
        _args(
            tmp_path,
            "ddp",
            sample_root,
            *one,
            "--trainer.max_steps",
            "2",
            "--trainer.max_epochs",
            "1",
            "--trainer.check_val_every_n_epoch",
            "1",
            "--data.train_repeat",
            "1",
        )
    )
    ckpt = tmp_path / "ckpt" / "last.ckpt"
    assert ckpt.is_file() and train.trainer.global_step == 2
    single = main(_args(tmp_path, "ddp", sample_root, *one, "--ckpt_path", str(ckpt), subcommand="test"))
    expected = {k: float(v) for k, v in single.trainer.callback_metrics.items()}
    ddp_logs = tmp_path / "ddp_logs"
    cmd = [
        sys.executable,
        str(REPO / "train.py"),
        *_args(
            tmp_path,
            "ddp",
            sample_root,
            "--trainer.accelerator",
            "cpu",
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--ckpt_path",
            str(ckpt),
            "--trainer.logger",
            "lightning.pytorch.loggers.CSVLogger",
            "--trainer.logger.init_args.save_dir",
            str(ddp_logs),
            subcommand="test",
        ),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = _csv_metrics(ddp_logs)
    assert "test/raw_psnr" in expected and expected.keys() - {"epoch"} <= got.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, rel=1e-5, abs=1e-5), key
    assert expected["test/raw_psnr"] != pytest.approx(expected["test/input_raw_psnr"], abs=1e-3)  # trained


def test_fast_dev_run_production_recipe_on_user_photos(tmp_path):
    import numpy as np
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(photos / f"{i}.png")
    args = [
        "fit",
        "--config",
        str(CONFIGS / "production.yaml"),
        "--data.scenes.init_args.images",
        f"[{photos}]",
        "--data.scenes.init_args.raws",
        "[]",
        "--data.num_workers",
        "0",
        "--data.crop_size",
        "16",
        "--data.eval_crop_size",
        "16",
        "--data.batch_size",
        "2",
        "--data.eval_size",
        "2",
        *TINY,
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        "--checkpoint.dirpath",
        str(tmp_path / "ckpt"),
        "--trainer.fast_dev_run",
        "true",
        "--trainer.accelerator",
        "cpu",
    ]
    cli = main(args)
    assert cli.trainer.global_step == 1
    assert torch.isfinite(cli.trainer.callback_metrics["val/raw_psnr"])
    assert cli.model.net.noise_map and cli.model.net.side_channels == (7, 5, 8)
    assert len(cli.datamodule.scenes.images) == 2


def _production_stages(tmp_path, stages: list[str], **arch_extra):
    """A tiny net saved as the previous stage's weights, and the CLI args composing ``stages`` from it.

    Returns ``(previous_net, args)``: the production configs with the data cut to one random photo
    and 16-px crops, the net to ``TINY``'s size, and one fast_dev_run step on the CPU.
    """
    import json

    import numpy as np
    from PIL import Image

    from isp.models import UNet

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(
        photos / "0.png"
    )
    arch = {"row_channels": 7, "col_channels": 5, "scalar_channels": 8, "noise_map": True}
    arch |= {"base_width": 4, "depth": 2, **arch_extra}
    torch.manual_seed(0)
    previous = UNet(**arch)
    start = tmp_path / "previous.pt"
    torch.save(previous.state_dict(), start)
    start.with_suffix(".json").write_text(
        json.dumps({"model": {"class_path": "isp.models.UNet", "init_args": arch}})
    )
    args = ["fit", *(a for f in stages for a in ("--config", str(CONFIGS / f)))]
    args += ["--model.init_weights", str(start), "--data.scenes.init_args.images", f"[{photos}]"]
    args += ["--data.scenes.init_args.raws", "[]", "--data.num_workers", "0", "--data.crop_size", "16"]
    args += ["--data.eval_crop_size", "16", "--data.batch_size", "2", "--data.eval_size", "2", *TINY]
    args += ["--trainer.logger.init_args.save_dir", str(tmp_path / "runs")]
    args += ["--checkpoint.dirpath", str(tmp_path / "ckpt"), "--trainer.fast_dev_run", "true"]
    args += ["--trainer.accelerator", "cpu"]
    return previous, args


STAGES_1_3 = ["production.yaml", "production_finetune.yaml", "production_line.yaml"]


def test_fast_dev_run_production_stage_3_adds_the_line_view_to_stage_2_weights(tmp_path):
    stage2, args = _production_stages(tmp_path, STAGES_1_3)
    args += ["--trainer.max_steps", "1", "--model.optimizer.init_args.lr", "0"]
    cli = main(args)
    net = cli.model.net
    assert net.line_features == 8 and cli.datamodule.reference_noise == 1.0
    assert cli.datamodule.crop_size == 16 and cli.model.net.side_channels == (7, 5, 8)
    # after one step at lr 0 the stage-2 weights are still there, the line view added to them
    for name, value in stage2.state_dict().items():
        assert torch.equal(net.state_dict()[name].cpu(), value), name
    assert cli.trainer.global_step == 1


@pytest.mark.parametrize(
    ("later", "overstated", "lr"),
    [
        (["production_overstated.yaml"], 0.5, 1e-4),
        (["production_overstated.yaml", "production_measured.yaml"], 0.65, 5e-5),
    ],
)
def test_fast_dev_run_production_stages_4_and_5_overstate_more_isos(tmp_path, later, overstated, lr):
    stages = STAGES_1_3 + later
    previous, args = _production_stages(tmp_path, stages, line_features=8)  # the stage before has the view
    cli = main(args)
    camera = cli.datamodule.camera
    assert camera.overstated == overstated and tuple(camera.overstate_factor) == (4.0, 32.0)
    assert camera.iso == (50.0, 32000.0)  # the rest of the camera model stays the default
    assert cli.trainer.optimizers[0].param_groups[0]["initial_lr"] == pytest.approx(lr)
    assert cli.model.net.line_features == 8 and cli.datamodule.reference_noise == 1.0
    for name, value in previous.state_dict().items():  # one small step from the stage before
        torch.testing.assert_close(cli.model.net.state_dict()[name].cpu(), value, rtol=0, atol=0.05, msg=name)
    assert cli.trainer.global_step == 1


def test_fast_dev_run_production_film_changes_only_the_conditioning(tmp_path):
    _, args = _production_stages(tmp_path, ["production.yaml", "production_film.yaml"])
    args = [a for a in args if a != "--model.init_weights"]
    i = args.index(str(tmp_path / "previous.pt"))
    cli = main(args[:i] + args[i + 1 :])  # from scratch, as the recipe
    net = cli.model.net
    assert net.conditioning == "film" and net.noise_map and net.side_channels == (7, 5, 8)
    assert cli.config["fit"]["trainer"]["logger"]["init_args"]["name"] == "production_film"
    assert cli.trainer.global_step == 1
    assert cli.config["fit"]["trainer"]["max_epochs"] == 18 and cli.datamodule.camera.overstated == 0.25


def test_fast_dev_run_production_film_stage_2_is_stage_2_from_film_weights(tmp_path):
    stages = ["production.yaml", "production_finetune.yaml", "production_film_finetune.yaml"]
    stage1, args = _production_stages(tmp_path, stages, conditioning="film")
    args += ["--trainer.max_steps", "1", "--model.optimizer.init_args.lr", "0"]
    cli = main(args)
    net = cli.model.net
    assert net.conditioning == "film" and net.noise_map and net.line_features == 0
    assert cli.config["fit"]["trainer"]["logger"]["init_args"]["name"] == "production_film_ft"
    overlay = yaml.safe_load((CONFIGS / "production_film_finetune.yaml").read_text())
    assert overlay["checkpoint"]["dirpath"] == "runs/production_film_ft/checkpoints"  # (the test's own here)
    assert overlay["model"]["init_weights"] == "runs/production_film/checkpoints/last.ckpt"
    assert cli.config["fit"]["trainer"]["max_epochs"] == 18  # stage 2's schedule
    assert cli.datamodule.crop_size == 16 and tuple(cli.datamodule.reference_a) == (5e-6, 1.2e-4)
    for name, value in stage1.state_dict().items():  # lr 0: the FiLM stage-1 weights, all of them
        assert torch.equal(net.state_dict()[name].cpu(), value), name
    assert cli.trainer.global_step == 1


@pytest.mark.parametrize(
    ("stage", "overstated", "previous_run"),
    [
        (3, 0.25, "production_film_ft"),
        (4, 0.5, "production_film_line"),
        (5, 0.65, "production_film_overstated"),
    ],
)
def test_fast_dev_run_production_film_stages_3_to_5_are_the_msconv_stages_without_the_line_view(
    tmp_path, stage, overstated, previous_run
):
    overlay = [
        "production_film_line.yaml",
        "production_film_overstated.yaml",
        "production_film_measured.yaml",
    ]
    stages = [*STAGES_1_3, "production_overstated.yaml", "production_measured.yaml"][:stage]
    previous, args = _production_stages(tmp_path, [*stages, overlay[stage - 3]], conditioning="film")
    args += ["--trainer.max_steps", "1", "--model.optimizer.init_args.lr", "0"]
    cli = main(args)
    net = cli.model.net
    assert net.conditioning == "film" and net.line_features == 0 and net.noise_map
    assert cli.datamodule.reference_noise == 1.0 and cli.datamodule.camera.overstated == overstated
    for name, value in previous.state_dict().items():  # lr 0: the previous FiLM stage, every weight
        assert torch.equal(net.state_dict()[name].cpu(), value), name
    config = yaml.safe_load((CONFIGS / overlay[stage - 3]).read_text())
    assert config["model"]["init_weights"] == f"runs/{previous_run}/checkpoints/last.ckpt"
    name = cli.config["fit"]["trainer"]["logger"]["init_args"]["name"]
    assert config["checkpoint"]["dirpath"] == f"runs/{name}/checkpoints" and name.startswith(
        "production_film_"
    )
    assert all(f"configs/{f}" in (CONFIGS / overlay[stage - 3]).read_text() for f in stages)


def _devset_study():
    sys.path.insert(0, str(REPO / "scripts"))
    import devset_study

    return devset_study


@pytest.mark.parametrize("variant", _devset_study().VARIANTS)
def test_fast_dev_run_every_devset_study_variant(tmp_path, variant):
    """scripts/devset_study.py's own command for each variant composes, builds that variant, trains."""
    from isp.models import SideInputs

    study = _devset_study()
    cmd = study.train_command(tmp_path / "work", variant, 5, [])
    assert cmd[1:3] == [str(REPO / "train.py"), "fit"]
    _, tiny = _production_stages(tmp_path, ["production.yaml"])
    keep = tiny[tiny.index("--data.scenes.init_args.images") :]  # the tiny data and fast_dev_run
    keep = [a.replace("--model.net.init_args.", "--model.net.init_args.net.init_args.") for a in keep]
    cli = main(cmd[2:] + keep)
    net = cli.model.net
    assert isinstance(net, SideInputs) and cli.trainer.global_step == 1
    conditioning = {"msconv_scalars": "msconv", "msconv_flat": "msconv", "msconv_noisemap": "msconv"}
    conditioning |= {"msconv_replicate": "msconv"}
    conditioning |= {"film_noisemap": "film"}
    assert net.inputs == {"msconv_scalars": "scalars", "msconv_flat": "flat"}.get(variant, "full")
    assert net.net.conditioning == conditioning.get(variant, variant) and net.net.base_width == 4
    assert net.net.noise_map == variant.endswith("_noisemap") and net.net.line_features == 0
    padding = "replicate" if variant == "msconv_replicate" else "zeros"
    assert net.net.padding_mode == padding and net.net.encoders[0].conv2.padding_mode == padding
    assert cli.config["fit"]["trainer"]["max_epochs"] == 12 and cli.datamodule.camera.overstated == 0.25


def test_every_config_file_is_used_and_documents_its_command():
    used = {f for files in COMPOSED.values() for f in files}
    used |= {"quickstart.yaml", "production.yaml", "production_finetune.yaml", "production_gpu.yaml"}
    used |= {"production_line.yaml", "production_overstated.yaml", "production_measured.yaml"}
    used |= {"production_film.yaml", "production_film_finetune.yaml", "production_film_line.yaml"}
    used |= {"production_film_overstated.yaml", "production_film_measured.yaml"}
    used |= {p.relative_to(CONFIGS).as_posix() for p in (CONFIGS / "experiment").glob("*.yaml")}  # study
    used |= {f"experiment/devset/{v}.yaml" for v in ["base", *_devset_study().VARIANTS]}  # dev-set study
    on_disk = {p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.yaml")}
    assert on_disk == used
    for name, files in COMPOSED.items():  # the last file's header gives the composed command
        header = (CONFIGS / files[-1]).read_text()
        assert all(f"configs/{f}" in header for f in files[1:]), name


def test_ddp_predict_writes_each_rank_share_identical_to_single_process(tmp_path, sample_root):
    """``train.py predict`` with the prediction writer on 2 CPU processes: every test frame is written
    once, by one rank, bit-for-bit as a single process writes it."""
    import json

    from torch import nn

    from isp.models import UNet

    torch.manual_seed(0)
    net = UNet(base_width=4, depth=2)
    nn.init.normal_(net.head.weight, std=0.05)  # not the identity: the outputs are denoised
    weights = tmp_path / "w.pt"
    torch.save(net.state_dict(), weights)
    arch = {"class_path": "isp.models.UNet", "init_args": {"base_width": 4, "depth": 2}}
    weights.with_suffix(".json").write_text(json.dumps({"model": arch}))

    def args(out_dir, *extra):
        writer = tmp_path / f"{out_dir.name}.yaml"
        writer.write_text(
            yaml.safe_dump(
                {
                    "trainer": {
                        "callbacks": [
                            {
                                "class_path": "isp.lit.writer.RawPredictionWriter",
                                "init_args": {"out_dir": str(out_dir)},
                            }
                        ]
                    }
                }
            )
        )
        return [
            *_args(
                tmp_path,
                "quickstart.yaml",
                sample_root,
                "--config",
                str(writer),
                "--model.init_weights",
                str(weights),
                "--data.eval_batch_size",
                "1",
                "--trainer.logger",
                "false",
                *extra,
                subcommand="predict",
            )
        ]

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the DDP processes (OMP_NUM_THREADS=1): the same sums
    try:
        single = main(args(tmp_path / "single", "--trainer.enable_progress_bar", "false"))
    finally:
        torch.set_num_threads(threads)
    (writer,) = [c for c in single.trainer.callbacks if type(c).__name__ == "RawPredictionWriter"]
    inputs = sorted(p.name for p in (sample_root / "test" / "noisy").glob("*.dng"))
    assert writer.failures == [] and sorted(p.name for p in writer.written) == inputs

    cmd = [
        sys.executable,
        str(REPO / "train.py"),
        *args(
            tmp_path / "ddp",
            "--trainer.accelerator",
            "cpu",
            "--trainer.devices",
            "2",
            "--trainer.strategy",
            "ddp",
            "--trainer.enable_progress_bar",
            "false",
        ),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stderr.splitlines() + proc.stdout.splitlines()
    shares = sorted(line.split("wrote ")[1] for line in lines if "RawPredictionWriter rank" in line)
    assert len(shares) == 2 and all(s.startswith("1 file") for s in shares), proc.stderr[-3000:]  # 2 frames
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == inputs
    for name in inputs:
        assert (tmp_path / "ddp" / name).read_bytes() == (tmp_path / "single" / name).read_bytes(), name
