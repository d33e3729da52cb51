"""One home in the core for what every domain does alike: weights naming, class parsing, unknown
options, never-overwrite names, splits, label CSVs and classifier files. Each test checks the
rule and that the domains follow it."""

import numpy as np
import pytest
import torch

from diffsuite.core import classifiers, naming, options, pretrained, splits
from diffsuite.core.errors import MissingFileError, UserError
from diffsuite.core.labels import read_label_csv
from diffsuite.core.toy import ToyDomain
from diffsuite.domains.audio import AudioDomain
from diffsuite.domains.audio.writing import write_clips
from diffsuite.domains.molecules import MoleculesDomain
from diffsuite.domains.molecules.molecule import Molecule
from diffsuite.domains.molecules.writer import write_molecules
from diffsuite.domains.video import VideoDomain
from diffsuite.domains.video.classifier import VideoClassifier, load_classifier, save_classifier
from diffsuite.domains.video.writing import VideoSample, write_sample


def test_shipped_weights_are_named_one_way(tmp_path):
    (tmp_path / "net.safetensors").write_bytes(b"x")
    assert pretrained.shipped_weights("default", tmp_path, "net.safetensors") == tmp_path / "net.safetensors"
    assert pretrained.shipped_weights("auto", tmp_path, "net.safetensors") == tmp_path / "net.safetensors"
    assert pretrained.shipped_weights("default", tmp_path, None) is None  # nothing shipped for this data
    assert pretrained.shipped_weights(None, tmp_path, "net.safetensors") is None
    assert pretrained.shipped_weights("net.safetensors", tmp_path, None) == tmp_path / "net.safetensors"
    assert pretrained.shipped_weights("/elsewhere/mine.safetensors", tmp_path, None).as_posix() == "/elsewhere/mine.safetensors"
    # every domain: default names its shipped file, and the other spellings mean the same
    for make in (lambda p: AudioDomain(pretrained=p, classifier=None), lambda p: VideoDomain(pretrained=p),
                 lambda p: MoleculesDomain(pretrained=p)):
        shipped = make("default").pretrained
        assert shipped is not None and shipped.is_file()
        assert make(shipped.name).pretrained == shipped and make(None).pretrained is None
    assert VideoDomain(pretrained="auto").pretrained == VideoDomain(pretrained="default").pretrained


def test_classes_and_unknown_options_one_way():
    assert options.parse_classes(None, 4, 3) is None
    assert options.parse_classes(2, 4, 3) == [2, 2, 2]
    assert options.parse_classes("0,3", ["a", "b", "c", "d"], 2) == [0, 3]
    assert options.parse_classes(["b", -1], ["a", "b"], 2) == [1, -1]
    assert options.parse_classes("none", 4, 1) == [-1]
    with pytest.raises(UserError, match=r"class=7 is outside this model's 4 classes"):
        options.parse_classes(7, 4, 1)
    with pytest.raises(UserError, match=r"class='dog' is not a class of this model; its 2 classes are 0=a, 1=b"):
        options.parse_classes("dog", ["a", "b"], 1)
    with pytest.raises(UserError, match="gives 2 classes for n=3"):
        options.parse_classes([0, 1], 4, 3)
    # every domain: the same message for the same mistakes
    toy, audio, video = ToyDomain(), AudioDomain(pretrained=None, classifier=None), VideoDomain()
    for d in (toy, audio, video):
        with pytest.raises(UserError, match=r"class=99 is outside this model's"):
            d.sampling_batch(1, **{"class": 99})
        with pytest.raises(UserError, match=rf"unknown {d.name} sampling option 'colour'; expected one of"):
            d.sampling_batch(1, colour=3)
    with pytest.raises(UserError, match="unknown molecules sampling option 'colour'"):
        MoleculesDomain(pretrained=None).sampling_batch(1, colour=3)
    assert audio.sampling_batch(2, **{"class": [audio.classes[3], 1]}).cond["class"].tolist() == [3, 1]
    assert video.sampling_batch(2, **{"class": "2,5"}).cond["class"].tolist() == [2, 5]


def test_numbers_are_finite_and_in_range():
    assert options.number("0.5", "seconds", low=0, low_open=True) == 0.5
    for bad, msg in ((float("inf"), "finite"), (float("nan"), "finite"), (0, "must be > 0"), ("x", "not a number")):
        with pytest.raises(UserError, match=f"seconds={bad!r}.*{msg}" if msg != "not a number" else msg):
            options.number(bad, "seconds", low=0, low_open=True)
    assert options.whole(4.0, "frames", low=1) == 4
    with pytest.raises(UserError, match="frames=2.5 is not a whole number"):
        options.whole(2.5, "frames", low=1)


def test_never_overwrite_names_one_way(tmp_path):
    assert naming.free_stem(tmp_path, "s", (".a", ".b")) == "s"
    (tmp_path / "s.b").write_text("keep")
    assert naming.free_stem(tmp_path, "s", (".a", ".b")) == "s_1"  # any file of the group takes the stem
    # each domain's writer, twice into one folder: the second run takes <stem>_1, the first is untouched
    wave = {"wave": np.zeros(256, np.float32), "sample_rate": 8000, "label": 3, "class_name": "c",
            "features": np.zeros((8, 2), np.float32)}
    first = write_clips([wave], tmp_path / "audio")
    before = first[0].read_bytes()
    second = write_clips([wave], tmp_path / "audio")
    assert [p.name for p in second] == ["sample_0000_class3_1.wav", "sample_0000_class3_1.png"]
    assert first[0].read_bytes() == before
    clip = VideoSample(frames=np.zeros((2, 4, 4, 1), np.uint8), label=-1, given=[], truth=None, truth_label=-1,
                       source="", fps=8)
    write_sample(clip, tmp_path / "video", index=0)
    assert {p.name for p in write_sample(clip, tmp_path / "video", index=0)} == {
        "sample_0000_1.mp4", "sample_0000_1.gif", "sample_0000_1.png", "sample_0000_1.npz"}
    mol = Molecule(["C", "H", "H", "H", "H"], np.array([[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63],
                                                        [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]]))
    write_molecules([mol], tmp_path / "mol")
    assert [p.name for p in write_molecules([mol], tmp_path / "mol")] == ["molecules_1.sdf", "molecules_1.png"]
    toy = ToyDomain(train_size=64)
    toy.write([np.zeros(2)], tmp_path / "toy")
    assert [p.name for p in toy.write([np.zeros(2)], tmp_path / "toy")] == ["samples_1.npz", "samples_1.png"]


def test_splits_are_stable_and_proportional():
    keys = [f"class{i % 3}/clip_{i}.wav" for i in range(4000)]
    got = [splits.split_of(k, 0.1, 0.2) for k in keys]
    assert got == [splits.split_of(k, 0.1, 0.2) for k in keys]  # the same on every run and machine
    frac = {s: got.count(s) / len(got) for s in ("train", "val", "test")}
    assert abs(frac["test"] - 0.2) < 0.03 and abs(frac["val"] - 0.1) < 0.03
    # adding files never moves the old ones
    assert [splits.split_of(k, 0.1, 0.2) for k in keys[:100]] == got[:100]


def test_label_csv_one_way(tmp_path):
    f = tmp_path / "labels.csv"
    f.write_text("path,label\n# a comment\na/x.wav,dog\n\nb\\\\y.wav , cat\n")
    assert read_label_csv(f) == {"a/x.wav": "dog", "b\\\\y.wav": "cat"}
    f.write_text("a/x.wav,dog\na/x.wav,cat\n")
    with pytest.raises(UserError, match=r"labels.csv, line 2: a/x.wav is labelled both 'dog' and 'cat'"):
        read_label_csv(f)
    with pytest.raises(MissingFileError, match="label CSV .*nope.csv does not exist"):
        read_label_csv(tmp_path / "nope.csv")
    f.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(UserError, match="is not a text CSV file"):
        read_label_csv(f)


def test_classifier_files_saved_and_checked_one_way(tmp_path):
    net = VideoClassifier(channels=1, classes=3, width=4)
    path = save_classifier(net, tmp_path / "clf.safetensors", {"accuracy": 0.5})
    back = load_classifier(path)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), back.state_dict().values()))
    with pytest.raises(FileExistsError, match="never overwritten"):
        save_classifier(net, path, {})
    # the shipped file in the first format still loads
    assert isinstance(load_classifier(VideoDomain().classifier_path()), VideoClassifier)
    # a file of another kind is named as what it is
    with pytest.raises(UserError, match="holds a video classifier.*not an audio classifier"):
        classifiers.read_classifier_meta(path, "audio_classifier")
    denoiser = VideoDomain().pretrained
    with pytest.raises(UserError, match=r"holds denoiser weights \(for checkpoint=\), not a video classifier"):
        load_classifier(denoiser)
    with pytest.raises(MissingFileError, match="no classifier weights at"):
        load_classifier(tmp_path / "missing.safetensors")
    meta = classifiers.read_classifier_meta(path, "video_classifier")
    with pytest.raises(UserError, match=r"is a classifier for config=.*this domain needs config="):
        classifiers.check_classifier_meta(path, meta, {"config": {"channels": 3}})


def test_records_of_one_file_split_by_exact_proportions():
    for n in (7, 10, 101):
        parts = splits.split_records(n, 0.1, 0.1)
        assert sorted(sum(parts.values(), [])) == list(range(n))  # every record once
        perm = np.random.RandomState(0).permutation(n)  # the molecules domain's split before core.splits
        assert parts["test"] == perm[int(round(0.9 * n)):].tolist() and parts["train"] == perm[:int(round(0.8 * n))].tolist()
    with pytest.raises(UserError, match="leave some data for training"):
        splits.split_records(10, 0.5, 0.5)
