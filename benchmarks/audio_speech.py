"""Audio: spoken digits from the shipped checkpoint, scored by the SC09 protocol (DiffWave, Kong et
al. 2021) on FSDD with the project's digit classifier: class accuracy, Fréchet distance of its
embedding, Inception score, modified Inception score and AM score, beside the held-out real and
vocoded-real lines, and clips per second.

    python benchmarks/audio_speech.py [--per-class 100] [--checkpoint PATH] [--threads 2] [--no-record]
    python benchmarks/audio_speech.py --per-class 5 --no-record       # a quick check (50 clips)

Samples are drawn as ``diffsuite sample`` draws them (``diffsuite.load(...).sample``, the
sample.yaml defaults unless --steps / --guidance / --sampler are given), written as WAV files and
scored from those files. Fréchet distances shrink as the set grows, so the FD is given over the
same number of clips as the real lines (the 300 held-out takes): mean and standard deviation over
disjoint class-balanced subsets of that size, and over all clips. The spread over seeds is that
of those subsets and, with --seeds K, of K sampling seeds. The real lines are read from the classifier
file (measured on all 300 held-out takes when it was made), or with --recompute-lines computed again
from the held-out takes (../shared/data/fsdd).
Targets (issue 13): accuracy >= 0.90; FD within 2x the vocoded-real FD.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import machine, record  # noqa: E402
import diffsuite  # noqa: E402
from diffsuite.domains.audio.classifier import load_classifier  # noqa: E402
from diffsuite.domains.audio.domain import FSDD_WEIGHTS, PRETRAINED_DIR  # noqa: E402
from diffsuite.domains.audio.evaluation import (figures, has_data, held_out_lines, read_sample_folder,  # noqa: E402
                                                reference_stats)

KEYS = ("accuracy", "fd", "is", "mis", "am", "mfcc_fd")


def balanced_chunks(labels: list[int], size: int, num_classes: int) -> list[np.ndarray]:
    """Disjoint subsets of `size` clips with the classes in equal numbers (as many as fit)."""
    per = size // num_classes
    by_class = [np.flatnonzero(np.asarray(labels) == c) for c in range(num_classes)]
    k = min(len(b) for b in by_class) // max(per, 1)
    return [np.concatenate([b[i * per:(i + 1) * per] for b in by_class]) for i in range(k)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=PRETRAINED_DIR / FSDD_WEIGHTS)
    p.add_argument("--per-class", type=int, default=100)
    p.add_argument("--seeds", type=int, default=1, help="sampling seeds (each draws --per-class clips per digit)")
    p.add_argument("--steps", type=int, default=None, help="default: sample.yaml's")
    p.add_argument("--guidance", type=float, default=None, help="default: diffsuite sample's (the domain's default_guidance)")
    p.add_argument("--sampler", default=None)
    p.add_argument("--schedule", default=None, help="default: sample.yaml's (consistency models: consistency)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--recompute-lines", action="store_true",
                   help="compute the real / vocoded-real lines from the held-out takes, not the classifier file's")
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if not a.checkpoint.is_file():
        raise SystemExit(f"{a.checkpoint}: no such checkpoint (train it: configs/experiment/audio_fsdd.yaml)")
    model = diffsuite.load(str(a.checkpoint), device="cpu")
    domain = model.domain
    if domain.classifier_path is None:
        raise SystemExit("no shipped classifier matches this checkpoint's classes and features")
    net, meta = load_classifier(domain.classifier_path, num_classes=domain.num_classes, n_mels=domain.spec.n_mels,
                                feature_spec=domain.spec.as_dict())
    ref = reference_stats(domain, net, meta)
    K = domain.num_classes
    classes = [c for c in range(K) for _ in range(a.per_class)]
    opts = {k: v for k, v in dict(steps=a.steps, guidance=a.guidance, sampler=a.sampler, schedule=a.schedule).items() if v is not None}
    runs, seconds, clips = [], 0.0, 0
    with tempfile.TemporaryDirectory(prefix="audio-speech-") as tmp:
        for seed in range(a.seeds):
            t0 = time.perf_counter()
            samples = model.sample(len(classes), seed=seed, batch_size=a.batch_size, progress=False,
                                   class_=classes, **opts)
            seconds += time.perf_counter() - t0
            clips += len(samples)
            folder = Path(tmp) / f"seed{seed}"
            samples.save(folder)
            x, labels, _ = read_sample_folder(domain, folder)
            runs.append((x, labels))
            print(f"seed {seed}: {len(samples)} clips in {time.perf_counter() - t0:.0f} s", flush=True)
    real_n = int(meta.get("reference_lines", {}).get("real_n", 0)) or 300
    if meta.get("reference_lines") and not a.recompute_lines:
        lines, where = meta["reference_lines"], f"stored in the classifier file (vocoder {meta.get('reference_vocoder')})"
    elif has_data(domain):
        lines = held_out_lines(domain, net, ref, None, None, vocoded=True)
        where = "computed from the held-out takes"
    else:
        lines, where = {}, "not available"
    real_n = int(lines.get("real_n", real_n))
    whole = [figures(net, x, y, ref, domain.spec) for x, y in runs]
    subsets = [figures(net, x[idx], [y[i] for i in idx], ref, domain.spec)
               for x, y in runs for idx in balanced_chunks(y, real_n, K)]

    def cell(values):
        return f"{np.mean(values):.3f} ± {np.std(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"

    gen_cfg = model.defaults()
    settings = (f"sampler {a.sampler or gen_cfg.sampler.name}, schedule {a.schedule or 'default'}, "
                f"{a.steps or gen_cfg.steps} steps, "
                f"guidance {a.guidance if a.guidance is not None else gen_cfg.guidance}")
    text = [f"### Spoken digits (FSDD), {a.checkpoint.name}, {datetime.date.today()}, {machine('cpu')}", "",
            f"`python benchmarks/audio_speech.py --per-class {a.per_class} --seeds {a.seeds}`: {a.per_class} clips per digit "
            f"per seed ({clips} in all), {settings}, vocoder {domain.vocoder}; {clips / seconds:.2f} clips/s "
            f"({seconds / clips:.2f} s a clip of {domain.frames * domain.spec.hop_length / domain.spec.sample_rate:.2f} s, "
            f"sampling + vocoder, batch {a.batch_size}, {a.threads} threads). Classifier test accuracy "
            f"{meta['test_accuracy']:.3f} on {meta['test_clips']} held-out clips. The FD, IS, mIS and AM columns over "
            f"{real_n} clips are mean ± sd over {len(subsets)} disjoint class-balanced subsets (the real lines have "
            f"{real_n} clips: {where}). Targets: accuracy >= 0.90, FD within 2x vocoded-real.", "",
            f"| figure | generated, all {clips} | generated, {real_n}-clip subsets | real held-out ({real_n}) | vocoded real ({real_n}) |",
            "|---|---|---|---|---|"]
    for k in KEYS:
        if k not in whole[0]:
            continue
        sub = [s[k] for s in subsets] or [float("nan")]
        text.append(f"| {k} | {cell([w[k] for w in whole])} | {cell(sub)} | {lines.get('real_' + k, float('nan')):.3f} | "
                    f"{lines.get('vocoded_' + k, float('nan')):.3f} |")
    fd_ratio = np.mean([s["fd"] for s in subsets]) / lines["vocoded_fd"] if subsets and "vocoded_fd" in lines else float("nan")
    acc = np.mean([w["accuracy"] for w in whole])
    text += ["", f"Accuracy {acc:.3f} ({'meets' if acc >= 0.9 else 'misses'} >= 0.90); FD / vocoded-real FD = "
             f"{fd_ratio:.2f} ({'meets' if fd_ratio <= 2 else 'misses'} <= 2)."]
    print("\n".join(text))
    if not a.no_record:
        record("## Audio", "\n".join(text))


if __name__ == "__main__":
    main()
