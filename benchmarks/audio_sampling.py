"""Audio: sampling time per second of audio on this machine at 10, 25 and 50 denoiser
evaluations (Euler: one evaluation a step; with CFG each evaluation is one batched call of twice
the batch), Griffin-Lim decoding timed apart, and the evaluate figures of the shipped checkpoint.

    python benchmarks/audio_sampling.py [--checkpoint PATH] [--n 8] [--threads 2] [--no-record]

Appends a table under ``## Audio`` in benchmarks/RESULTS.md, with the machine and the date.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
from pathlib import Path

import torch

from diffsuite.core.generate import generate
from diffsuite.core.training.export import build_from_export
from diffsuite.domains.audio.domain import PRETRAINED_DIR
from diffsuite.domains.audio.features import MelInverter, spectral_convergence
from diffsuite.domains.audio.synthetic import synth_split

from _results import RESULTS, machine, record

SECTION = "## Audio"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=PRETRAINED_DIR / "audio_default.safetensors")
    p.add_argument("--n", type=int, default=8, help="clips per timed batch")
    p.add_argument("--seconds", type=float, default=1.024)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--no-record", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    domain, denoiser, _ = build_from_export(a.checkpoint, a.device, expect_domain="audio")
    rows = []
    for evals in (10, 25, 50):
        for guidance in (1.0, a.guidance):
            kw = dict(sampler="euler", steps=evals, guidance=guidance, device=a.device, seconds=a.seconds)
            batch = domain.sampling_batch(a.n, seconds=a.seconds)
            audio_s = a.n * batch.x.shape[-1] * domain.spec.hop_length / domain.spec.sample_rate
            generate(domain, denoiser, 1, **{**kw, "steps": 2})  # warm-up
            t0 = time.perf_counter()
            samples, _ = generate(domain, denoiser, a.n, **kw)
            total = time.perf_counter() - t0
            t1 = time.perf_counter()
            domain.decode(torch.zeros_like(batch.x), batch)  # Griffin-Lim alone, same size
            vocoder = time.perf_counter() - t1
            rows.append((evals, guidance, (total - vocoder) / audio_s, vocoder / audio_s, total / audio_s))
            print(f"{evals} evals, guidance {guidance}: {total / audio_s:.3f} s per second of audio "
                  f"(denoiser {(total - vocoder) / audio_s:.3f}, Griffin-Lim {vocoder / audio_s:.3f})", flush=True)
    waves, _ = synth_split("test", 10, num_samples=domain.frames * domain.spec.hop_length)
    w = torch.from_numpy(waves)
    sc = spectral_convergence(w, MelInverter(domain.spec, n_iter=domain.griffin_lim_iters)(domain._logmel(w)), domain.spec)
    print(f"Griffin-Lim round trip: spectral convergence {sc.mean():.3f} (median {sc.median():.3f}) on {len(w)} clips")
    with tempfile.TemporaryDirectory() as tmp:
        samples, _ = generate(domain, denoiser, 20, sampler="heun", steps=16, guidance=a.guidance, device=a.device)
        domain.write(samples, Path(tmp))
        fig = domain.evaluate(Path(tmp))
    text = [f"### Sampling time, {a.checkpoint.name} ({domain.preset}), {datetime.date.today()}, {machine(a.device)}",
            "", f"Batches of {a.n} clips of {a.seconds} s, Euler; CFG {a.guidance} doubles the batch of each evaluation.", "",
            "| evaluations | guidance | denoiser s / audio s | Griffin-Lim s / audio s | total s / audio s |",
            "|---|---|---|---|---|"]
    text += [f"| {e} | {g} | {d:.3f} | {v:.3f} | {t:.3f} |" for e, g, d, v, t in rows]
    text += ["", f"Evaluate figures of 20 class-conditioned samples (2 per class, Heun 16 steps = 31 evaluations, "
             f"CFG {a.guidance}) beside 20 held-out real clips and those clips after the mel/Griffin-Lim round trip:", "",
             "| figure | samples | real held-out | real, vocoded |", "|---|---|---|---|"]
    for k in ("fd", "is", "accuracy", "mfcc_fd"):
        text.append(f"| {k} | {fig[k]:.3f} | {fig['real_' + k]:.3f} | {fig['vocoded_' + k]:.3f} |")
    text.append(f"| classifier test accuracy | {fig['classifier_test_accuracy']:.3f} | | |")
    text += ["", f"Mel -> InverseMelScale -> Griffin-Lim ({domain.griffin_lim_iters} iterations) round trip on {len(w)} "
             f"held-out synthetic clips: spectral convergence {sc.mean():.3f} (median {sc.median():.3f})."]
    print("\n".join(text))
    if not a.no_record:
        record(SECTION, "\n".join(text))
        print(f"appended to {RESULTS}")


if __name__ == "__main__":
    main()
