"""The Python API (core/api.py, `import diffsuite`): the command line's options and defaults,
samples that save and show themselves, evaluation of a folder or a list."""

import base64
import inspect
import io
import re
import subprocess
import sys

import numpy as np
import pytest

import diffsuite
from diffsuite.core.api import NOT_SAMPLE_KEYS, SAMPLE_KEYS, Model, Sample, Samples, compose_config
from diffsuite.core.errors import MissingFileError, UserError


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A tiny toy trained by the real trainer: its run folder and exported weights."""
    from diffsuite.core.training import train

    run = tmp_path_factory.mktemp("api") / "run"
    cfg = compose_config("train", ["domain=toy", "domain.preset=tiny", "trainer=debug", "trainer.steps=30",
                                   f"run_dir={run}"])
    weights = train(cfg)
    assert weights == run / "export" / "weights.safetensors"
    return run, weights


@pytest.fixture(scope="module")
def toy(toy_run):
    return diffsuite.load(toy_run[1], device="cpu")


def data_uris(html: str, mime: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(rf'src="data:{re.escape(mime)};base64,([^"]+)"', html)]


def test_import_diffsuite_is_light_and_names_the_api():
    code = ("import sys, diffsuite; heavy = [m for m in ('torch', 'hydra', 'diffsuite.core.api') if m in sys.modules]; "
            "assert not heavy, heavy; from diffsuite.core import api; "
            "assert diffsuite.load is api.load and diffsuite.evaluate is api.evaluate and diffsuite.Samples is api.Samples; "
            "assert {'load', 'evaluate', 'Model', 'Samples', 'Sample'} <= set(dir(diffsuite))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        diffsuite.nope  # noqa: B018


def test_sample_takes_every_option_of_the_command_line():
    # sample.yaml's own keys (no domain): each is an argument of Model.sample, or belongs to load()/save()
    own = set(compose_config("sample", ["~domain"]))
    assert own == set(SAMPLE_KEYS) | set(NOT_SAMPLE_KEYS) | {"sampler", "schedule"}
    params = inspect.signature(Model.sample).parameters
    assert set(SAMPLE_KEYS) | {"sampler", "schedule"} <= set(params)
    assert all(params[k].default is None for k in (*SAMPLE_KEYS, "sampler", "schedule"))  # None = the config's default
    assert "device" in inspect.signature(diffsuite.load).parameters
    for name in ("toy", "audio", "video", "molecules"):  # every domain option has a default to fall back on
        cfg = compose_config("sample", [f"domain={name}"])
        assert set(cfg.sample_options) <= set(cfg), name


def test_api_and_command_line_draw_the_same_samples(toy_run, toy, tmp_path):
    """Defaults (n, steps, schedule, guidance, batch size) and the options given agree exactly."""
    run, weights = toy_run
    r = subprocess.run([sys.executable, "-m", "diffsuite.core.cli", "sample", "domain=toy", f"checkpoint={weights}",
                        "device=cpu", "seed=3", "class=2", "sampler=dpmpp_2m", f"out={tmp_path / 'cli'}"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    cli = np.load(tmp_path / "cli" / "samples.npz")["samples"]
    api = np.stack(toy.sample(seed=3, class_=2, sampler="dpmpp_2m", progress=False).values)
    assert cli.shape == api.shape == (compose_config("sample").n, 2)
    np.testing.assert_allclose(api, cli, rtol=1e-6, atol=1e-6)
    other = np.stack(toy.sample(seed=4, class_=2, sampler="dpmpp_2m", progress=False).values)
    assert np.abs(other - cli).max() > 1e-3  # the comparison can tell samples apart


def test_options_reach_the_sampler_and_the_domain(toy):
    draw = lambda **kw: np.stack(toy.sample(n=32, steps=6, progress=False, **kw).values)  # noqa: E731
    # euler_ancestral with eta=0 adds no noise: it is Euler, so sampler_options got through
    np.testing.assert_allclose(draw(sampler="euler_ancestral", sampler_options={"eta": 0.0}), draw(sampler="euler"),
                               rtol=1e-5, atol=1e-6)
    assert np.abs(draw(sampler="euler_ancestral") - draw(sampler="euler")).max() > 1e-3
    # a schedule by name is the config's function with the config's values
    from functools import partial

    from diffsuite.core.schedules import exponential_sigmas

    grid = compose_config("sample", ["schedule=exponential"]).schedule
    np.testing.assert_array_equal(draw(schedule="exponential"), draw(schedule=partial(
        exponential_sigmas, sigma_min=grid.sigma_min, sigma_max=grid.sigma_max)))
    # class is spelled class_ in Python, or passed as a dict; either reaches the domain
    np.testing.assert_array_equal(draw(class_=2), draw(**{"class": 2}))
    assert np.abs(draw(class_=2) - draw(class_=5)).max() > 1e-3


def test_bad_requests_are_one_line_user_errors(toy, toy_run, tmp_path):
    cases = [
        (lambda: toy.sample(seconds=1.0), UserError, r"unknown toy sampling option 'seconds'; this domain takes class_"),
        (lambda: toy.sample(sampler="ddpm"), UserError, r"unknown sampler 'ddpm'; choose one of .*heun"),
        (lambda: toy.sample(schedule="cosine"), UserError, r"unknown schedule 'cosine'; choose one of .*karras"),
        (lambda: toy.sample(schedule=3), UserError, r"schedule must be a config name or a function"),
        (lambda: toy.sample(seed=-1), UserError, r"seed=-1"),
        (lambda: toy.sample(n=0), UserError, r"n=0"),
        (lambda: diffsuite.load(tmp_path / "nowhere.safetensors"), MissingFileError, r"neither a domain \(audio, "),
        (lambda: diffsuite.load("toy"), UserError, r"domain 'toy' ships no pretrained weights"),
        (lambda: diffsuite.evaluate("toy", tmp_path / "missing"), MissingFileError, r"no samples at"),
        (lambda: diffsuite.evaluate("toy", []), UserError, r"the list is empty"),
        (lambda: diffsuite.evaluate("toy", toy_run[0], novelty=True), UserError, r"unknown toy evaluate option"),
        (lambda: diffsuite.evaluate("nope", toy_run[0]), UserError, r"unknown domain 'nope'; choose one of audio"),
        (lambda: diffsuite.evaluate("audio", toy.sample(n=2, steps=2, progress=False)), UserError,
         r"these are 'toy' samples; they cannot be evaluated as 'audio'"),
    ]
    for call, kind, message in cases:
        with pytest.raises(kind, match=message) as e:
            call()
        assert "\n" not in str(e.value)


def test_load_takes_a_run_folder_and_names_its_weights(toy_run):
    run, weights = toy_run
    model = diffsuite.load(run, device="cpu")
    assert model.path == weights and model.name == "toy" and model.device == "cpu"
    assert "toy" in repr(model)


def test_samples_are_a_sequence_of_samples(toy):
    samples = toy.sample(n=5, steps=4, progress=False)
    assert isinstance(samples, Samples) and len(samples) == 5 and len(samples.values) == 5
    assert samples.tensor.shape == (5, 2)
    first, last = samples[0], samples[-1]
    assert isinstance(first, Sample) and (first.index, last.index) == (0, 4)
    np.testing.assert_array_equal(last.value, samples.values[4])
    part = samples[1:4]
    assert isinstance(part, Samples) and len(part) == 3 and part[0].index == 1 and [s.index for s in part] == [1, 2, 3]
    with pytest.raises(IndexError):
        samples[5]  # noqa: B018
    assert repr(samples) == "<5 toy samples>"


def test_save_never_overwrites(toy, tmp_path):
    out = tmp_path / "toy"
    files = toy.sample(n=8, steps=4, progress=False).save(out)
    assert [f.suffix for f in files] == [".npz", ".png"] and all(f.parent == out for f in files)
    before = {f: f.read_bytes() for f in files}
    try:  # a domain takes the next free name, or refuses
        second = toy.sample(n=8, steps=4, seed=1, progress=False).save(out)
    except FileExistsError:
        second = []
    assert not set(second) & set(files) and {f: f.read_bytes() for f in files} == before
    assert sorted(out.iterdir()) == sorted(files + second)


def test_evaluate_a_folder_a_list_and_raw_values_alike(toy, tmp_path):
    samples = toy.sample(n=64, steps=8, progress=False)
    samples.save(tmp_path / "s")
    from_folder = diffsuite.evaluate("toy", tmp_path / "s")
    assert {"sliced_wasserstein", "sliced_wasserstein_real", "log_likelihood"} <= set(from_folder)
    assert all(np.isfinite(v) for v in from_folder.values())
    assert diffsuite.evaluate("toy", samples) == from_folder
    assert diffsuite.evaluate(toy, list(samples)) == from_folder  # a Model: its own domain is the reference
    assert diffsuite.evaluate("toy", samples.values) == from_folder
    fewer = diffsuite.evaluate("toy", samples[:16])
    assert fewer != from_folder  # the list given is what is evaluated


def test_toy_samples_show_their_picture(toy):
    samples = toy.sample(n=16, steps=4, progress=False)
    html = samples._repr_html_()
    pngs = data_uris(html, "image/png")
    assert len(pngs) == 1 and pngs[0].startswith(b"\x89PNG") and "16 toy samples" in html
    assert samples._repr_png_() == pngs[0]


# --- the shipped models: what a notebook shows -----------------------------------------------------
@pytest.fixture(scope="module")
def audio_samples():
    return diffsuite.load("audio", device="cpu").sample(n=2, steps=8, class_=1, seconds=0.5, progress=False)


def test_audio_samples_show_players_of_their_clips(audio_samples):
    import soundfile as sf

    html = audio_samples._repr_html_()
    wavs = data_uris(html, "audio/wav")
    assert html.count("<audio controls") == 2 and len(wavs) == 2
    wave, rate = sf.read(io.BytesIO(wavs[0]))
    value = audio_samples.values[0]
    assert rate == value["sample_rate"] and len(wave) == len(value["wave"])
    np.testing.assert_allclose(wave, np.clip(value["wave"], -1, 1), atol=1.0 / 2**14)  # the clip itself, as 16-bit PCM
    one = audio_samples[1]._repr_html_()
    assert one.count("<audio controls") == 1 and len(data_uris(one, "image/png")) == 1  # and its spectrogram
    assert audio_samples[1]._repr_png_().startswith(b"\x89PNG")


def test_video_samples_show_animations():
    from PIL import Image

    samples = diffsuite.load("video", device="cpu").sample(n=2, steps=4, class_=[3, 7], progress=False)
    html = samples[0]._repr_html_()
    gifs = data_uris(html, "image/gif")
    assert len(gifs) == 1 and "<video" not in html  # the GIF animates; the MP4 would repeat it
    gif = Image.open(io.BytesIO(gifs[0]))
    assert gif.n_frames == samples.values[0].frames.shape[0] > 1
    assert len(data_uris(html, "image/png")) == 1  # the frame grid
    assert len(data_uris(samples._repr_html_(), "image/gif")) == 2


def test_molecule_samples_show_depictions_and_save_without_overwriting(tmp_path):
    from PIL import Image

    samples = diffsuite.load("molecules", device="cpu").sample(n=4, steps=4, progress=False)
    html = samples._repr_html_()
    pngs = data_uris(html, "image/png")
    assert len(pngs) == 1 and "<audio" not in html and "<video" not in html  # the SDF is saved, not shown
    assert Image.open(io.BytesIO(pngs[0])).size[0] >= 4 * 200  # one 200-pixel depiction per molecule, in a row
    assert Image.open(io.BytesIO(samples[2]._repr_png_())).size == (200, 200)
    first = samples.save(tmp_path)
    before = {f: f.read_bytes() for f in first}
    second = samples[:2].save(tmp_path)
    assert not set(first) & set(second) and all(f.suffix in (".sdf", ".png") for f in second)
    assert {f: f.read_bytes() for f in first} == before
    assert second[0].read_text().count("$$$$") == 2
