"""`diffsuite plot`: learning curves (PNG + CSV) from run folders, several runs overlaid, and a
one-line refusal for a folder that is not a run."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffsuite.core.cli import main
from diffsuite.core.training.curves import NotARunError, plot_runs, plotted_figures, read_run
from diffsuite.core.training.run_log import COLUMNS


def fake_run(path: Path, *, scale: float = 1.0, wall_column: bool = True) -> Path:
    """A run folder as the trainer writes it: log.csv every 5 steps, evals.csv at 10 and 20."""
    path.mkdir(parents=True)
    columns = COLUMNS if wall_column else [c for c in COLUMNS if c != "wall_s"]
    with open(path / "log.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        for i, step in enumerate(range(5, 25, 5)):
            w.writerow({"step": step, "epoch": 0, "loss": scale / step, "lr": 1e-3, "grad_norm": 1.0,
                        "samples_per_s": 100.0, "skipped": 0, "elapsed_s": 2.0, "wall_s": 2.0 * (i + 1)})
    with open(path / "evals.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["step", "wall_s", "loss", "eval_s", "nfe", "n", "fd", "real_fd", "samples"])
        w.writeheader()
        for step, fd in ((10, 9.0 * scale), (20, 4.0 * scale)):
            w.writerow({"step": step, "wall_s": step / 5 * 2.0 + 0.5, "loss": scale / step, "eval_s": 0.5, "nfe": 15,
                        "n": 8, "fd": fd, "real_fd": 1.5, "samples": 8})
    return path


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_plot_writes_one_png_and_csv_per_run_with_every_number(tmp_path):
    run = fake_run(tmp_path / "run_a")
    written = plot_runs([run], tmp_path / "out")
    assert written == [tmp_path / "out" / "run_a.png", tmp_path / "out" / "run_a.csv"]
    table = {int(r["step"]): r for r in rows(tmp_path / "out" / "run_a.csv")}
    assert sorted(table) == [5, 10, 15, 20]
    for step in table:  # the loss at every logged step, the figures at the evaluated ones
        assert float(table[step]["loss"]) == pytest.approx(1.0 / step)
    assert float(table[10]["fd"]) == 9.0 and float(table[20]["fd"]) == 4.0 and table[15]["fd"] == ""
    assert float(table[20]["real_fd"]) == 1.5 and float(table[20]["wall_s"]) == 8.0
    assert float(table[20]["eval_wall_s"]) == 8.5 and float(table[20]["nfe"]) == 15
    # panels: loss and fd (real_fd is fd's dashed reference; the constant counts are left out)
    assert plotted_figures(read_run(run)) == (["fd"], {"fd": "real_fd"})
    with Image.open(tmp_path / "out" / "run_a.png") as im:
        assert im.format == "PNG" and im.size[1] == round(2 * 2.6 * 90)  # two rows of panels
        assert len(np.unique(np.asarray(im.convert("L")))) > 10  # something was drawn


def test_several_runs_are_overlaid_with_their_numbers(tmp_path):
    a = fake_run(tmp_path / "lr3" / "run")
    b = fake_run(tmp_path / "lr4" / "run", scale=2.0)
    written = plot_runs([a, b], tmp_path / "cmp")
    names = sorted(p.name for p in written)
    assert names == ["lr3-run.csv", "lr3-run.png", "lr4-run.csv", "lr4-run.png", "overlay.csv", "overlay.png"]
    overlay = rows(tmp_path / "cmp" / "overlay.csv")
    fd = {(r["run"], r["step"]): r["fd"] for r in overlay if r["fd"]}
    assert fd == {("lr3-run", "10"): "9.0", ("lr3-run", "20"): "4.0", ("lr4-run", "10"): "18.0",
                  ("lr4-run", "20"): "8.0"}
    with Image.open(tmp_path / "cmp" / "overlay.png") as im:
        assert im.format == "PNG"


def test_a_log_without_wall_time_sums_its_windows(tmp_path):
    run = read_run(fake_run(tmp_path / "old", wall_column=False))
    assert [w for _, w, _ in run.loss] == [2.0, 4.0, 6.0, 8.0]


def test_command_plots_and_refuses_a_folder_that_is_not_a_run_by_name(tmp_path, capsys):
    good = fake_run(tmp_path / "good")
    main(["plot", str(good), f"out={tmp_path / 'figs'}"])
    assert str(tmp_path / "figs" / "good.png") in capsys.readouterr().out
    assert (tmp_path / "figs" / "good.png").is_file() and (tmp_path / "figs" / "good.csv").is_file()

    main(["plot", str(good)])  # one run: the pictures go into the run folder
    assert (good / "curves" / "good.png").is_file()

    stray = tmp_path / "holiday_photos"
    stray.mkdir()
    with pytest.raises(SystemExit) as e:
        main(["plot", str(good), str(stray), f"out={tmp_path / 'mixed'}"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(stray) in err and "not a training run folder" in err
    assert not (tmp_path / "mixed").exists()  # refused before anything was drawn

    with pytest.raises(NotARunError, match="no such folder"):
        read_run(tmp_path / "missing")
    with pytest.raises(SystemExit):
        main(["plot", str(good), "outt=x"])
    assert "unknown option 'outt'" in capsys.readouterr().err
