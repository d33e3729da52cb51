"""Each compiled extension the project relies on loads and computes beside this torch.

A mismatched pair (torchaudio 2.11.1's libtorchaudio beside torch 2.11.0 failed with an undefined
symbol) must fail here, with a message naming the pair, not somewhere deep in a domain test."""

from __future__ import annotations

import importlib.metadata as md

import numpy as np
import pytest
import torch


def pair(package: str) -> str:
    return f"{package} {md.version(package)} beside torch {torch.__version__}"


def test_torchaudio_compiled_ops_load_beside_torch():
    try:
        import torchaudio.functional as F
        from torchaudio._extension import _IS_TORCHAUDIO_EXT_AVAILABLE
    except (ImportError, OSError) as e:
        pytest.fail(f"{pair('torchaudio')} does not import: {e}")
    assert _IS_TORCHAUDIO_EXT_AVAILABLE, f"{pair('torchaudio')}: libtorchaudio did not load"
    # forced_align runs in libtorchaudio (torch.ops.torchaudio); a path through 3 tokens exists
    log_probs = torch.randn(1, 12, 5).log_softmax(-1)
    alignment, scores = F.forced_align(log_probs, torch.tensor([[1, 2, 3]], dtype=torch.int32), blank=0)
    assert alignment.shape == (1, 12) and torch.isfinite(scores).all(), pair("torchaudio")
    assert set(alignment[alignment > 0].unique().tolist()) == {1, 2, 3}, pair("torchaudio")


def test_rdkit_parses_embeds_and_writes():
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    assert AllChem.EmbedMolecule(mol, randomSeed=0) == 0, f"rdkit {md.version('rdkit')}: ETKDG failed on ethanol"
    back = Chem.MolFromMolBlock(Chem.MolToMolBlock(mol), removeHs=False)
    assert Chem.MolToSmiles(Chem.RemoveHs(back)) == "CCO"


def test_e3nn_tensor_product_is_equivariant():
    from e3nn import o3

    tp = o3.FullyConnectedTensorProduct("2x0e + 1x1o", "1x1o", "1x0e + 1x1o")
    x1, x2 = torch.randn(4, 5), torch.randn(4, 3)
    rot = o3.rand_matrix()
    d1, d2, dout = (o3.Irreps(s).D_from_matrix(rot) for s in ("2x0e + 1x1o", "1x1o", "1x0e + 1x1o"))
    torch.testing.assert_close(tp(x1 @ d1.T, x2 @ d2.T), tp(x1, x2) @ dout.T, atol=1e-5, rtol=1e-4,
                               msg=f"{pair('e3nn')}: tensor product not equivariant")


def test_soundfile_round_trip(tmp_path):
    import soundfile as sf

    wave = (0.5 * np.sin(np.linspace(0, 200 * np.pi, 8000))).astype(np.float32)
    for ext in ("wav", "flac"):
        sf.write(tmp_path / f"a.{ext}", wave, 8000)
        back, rate = sf.read(tmp_path / f"a.{ext}", dtype="float32")
        assert rate == 8000 and np.abs(back - wave).max() < 1e-3, f"soundfile {md.version('soundfile')} ({ext})"


def _frames() -> np.ndarray:
    t = np.arange(8)[:, None, None]
    x = np.arange(32)[None, None, :]
    return np.repeat(((x * 8 + t * 16) % 256).astype(np.uint8)[..., None], 3, axis=-1).repeat(32, axis=1)  # (8, 32, 32, 3)


def test_bundled_ffmpeg_writes_and_reads_h264(tmp_path):
    import imageio.v3 as iio

    frames = _frames()
    path = tmp_path / "clip.mp4"
    try:
        iio.imwrite(path, frames, plugin="FFMPEG", fps=8, codec="libx264", macro_block_size=1)
        back = iio.imread(path, plugin="FFMPEG")
    except Exception as e:  # noqa: BLE001 -- name the package pair, whatever the codec layer raised
        pytest.fail(f"imageio-ffmpeg {md.version('imageio-ffmpeg')} with imageio {md.version('imageio')}: {e}")
    assert back.shape == frames.shape
    assert np.abs(back.astype(float) - frames).mean() < 12


def test_pyav_encodes_and_decodes_h264(tmp_path):
    import av

    frames = _frames()
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(path)) as inp:
        back = np.stack([fr.to_ndarray(format="rgb24") for fr in inp.decode(video=0)])
    assert back.shape == frames.shape, f"PyAV {md.version('av')}"
    assert np.abs(back.astype(float) - frames).mean() < 12
