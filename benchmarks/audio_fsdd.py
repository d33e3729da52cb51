"""Audio on real speech: the Free Spoken Digit Dataset (FSDD, 8 kHz, label = the digit before the
first '_'), read through the folder adapter. Trains the project's classifier and a denoiser on
it, samples class-conditioned digits and evaluates them beside held-out real clips.

    python benchmarks/audio_fsdd.py [--data ../shared/data/fsdd/train] [--steps 2000] [--preset S]
                                    [--device cpu|cuda] [--no-record]

Targets (issue 5, on a GPU): samples recognised by the classifier at >= 90 % and a Fréchet
distance within 2x of the held-out real one. On a CPU, run few steps: the figures then say how
far a short run gets, not what the model can do. Appends its table under ``## Audio`` in
benchmarks/RESULTS.md. For development and benchmarks only: tests never read FSDD.
"""

from __future__ import annotations

import argparse
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _results import machine, record  # noqa: E402
from diffsuite.core.generate import generate  # noqa: E402
from diffsuite.core.training.export import build_from_export  # noqa: E402
from diffsuite.domains.audio import AudioDomain  # noqa: E402
from diffsuite.domains.audio.classifier import train_classifier  # noqa: E402
from diffsuite.domains.audio.features import measure_normalisation  # noqa: E402
from diffsuite.domains.audio.folder import read_audio, scan_folder  # noqa: E402

PATTERN = "^([0-9])_"  # the digit before the first underscore
SECONDS = 0.768  # 48 frames: 99 % of FSDD clips are shorter than 0.93 s, the median is 0.42 s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/fsdd/train"))
    p.add_argument("--out", type=Path, default=ROOT / "runs/audio/fsdd")
    p.add_argument("--preset", default="S")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--classifier-steps", type=int, default=1500)
    p.add_argument("--n", type=int, default=100, help="class-conditioned samples to evaluate (n/10 per digit)")
    p.add_argument("--sample-steps", type=int, default=32)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)

    # feature normalisation measured on 300 clips (std = sigma_data)
    entries = scan_folder(a.data, labels="regex", pattern=PATTERN)
    waves = [read_audio(path, 8000) for path, _ in entries[::9]]
    n = min(len(w) for w in waves)
    offset, scale = measure_normalisation(torch.stack([w[:n] for w in waves]), AudioDomain(pretrained=None).spec)
    over = {"data": a.data, "labels": "regex", "label_pattern": PATTERN, "seconds": SECONDS, "preset": a.preset,
            "feature_offset": round(offset, 3), "feature_scale": round(scale, 4), "pretrained": None}
    clf_path = a.out / "classifier.safetensors"
    domain = AudioDomain(**over, classifier=str(clf_path))
    t0 = time.time()
    meta = train_classifier(domain, clf_path, steps=a.classifier_steps) if not clf_path.exists() else None
    t_clf = time.time() - t0

    run_dir = a.out / f"denoiser_{a.preset}_{a.steps}"
    weights = run_dir / "export/weights.safetensors"
    t0, reused = time.time(), weights.exists()
    if not reused:
        cmd = [sys.executable, "-m", "diffsuite.core.cli", "train", "domain=audio", f"run_dir={run_dir}",
               *[f"domain.{k}={'null' if v is None else v}" for k, v in over.items() if k != "label_pattern"],
               f"domain.label_pattern='{PATTERN}'", f"domain.classifier={clf_path}",
               f"trainer.steps={a.steps}", f"trainer.batch_size={a.batch_size}", f"trainer.lr={a.lr}",
               "trainer.warmup=100", "trainer.ema=[0.999]", "trainer.cond_dropout=0.1", f"trainer.device={a.device}",
               "trainer.num_workers=0", "trainer.tensorboard=false", "trainer.progress=false", "trainer.log_every=100",
               f"trainer.checkpoint_every={max(a.steps // 4, 1)}"]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True, cwd=ROOT)
    t_train = time.time() - t0

    domain, denoiser, _ = build_from_export(weights, a.device, expect_domain="audio")
    with tempfile.TemporaryDirectory() as tmp:
        samples, _ = generate(domain, denoiser, a.n, sampler="heun", steps=a.sample_steps, guidance=a.guidance,
                              device=a.device, batch_size=50)
        domain.write(samples, Path(tmp))
        fig = domain.evaluate(Path(tmp))
    acc = meta["test_accuracy"] if meta else fig["classifier_test_accuracy"]
    text = [f"### FSDD ({len(entries)} clips, {SECONDS} s crops), {datetime.date.today()}, {machine(a.device)}", "",
            f"Denoiser {a.preset}, {a.steps} steps of batch {a.batch_size} "
            f"({'reused from ' + str(run_dir) if reused else f'{t_train:.0f} s here'}), classifier "
            f"{a.classifier_steps} steps (test accuracy {acc:.3f}{'' if meta is None else f', {t_clf:.0f} s'}). "
            f"{a.n} class-conditioned samples, Heun {a.sample_steps} steps, CFG {a.guidance}, beside as many held-out real clips. "
            "Targets (issue 5, GPU run): accuracy >= 0.90, FD within 2x of the real held-out one.", "",
            "| figure | samples | real held-out | real, vocoded |", "|---|---|---|---|"]
    for k in ("fd", "is", "accuracy", "mfcc_fd"):
        text.append(f"| {k} | {fig[k]:.3f} | {fig['real_' + k]:.3f} | {fig['vocoded_' + k]:.3f} |")
    print("\n".join(text))
    if not a.no_record:
        record("## Audio", "\n".join(text))


if __name__ == "__main__":
    main()
