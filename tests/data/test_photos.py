from __future__ import annotations

import hashlib

import numpy as np
import pytest
from PIL import Image

from edgeens.data import photos
from edgeens.data.photos import CATALOGUE, PhotosError, degraded_pairs, install_photos, photo_split


def test_the_split_is_fixed_and_disjoint() -> None:
    names = [p.name for p in CATALOGUE]
    assert len(names) == len(set(names))
    by_split = {s: {p.name for p in CATALOGUE if p.split == s} for s in photos.SPLITS}
    assert len(by_split["test"]) >= 5 and len(by_split["val"]) >= 4 and len(by_split["train"]) >= 15
    # the retina scan and the Hubble field (bundled, not natural photographs) are not in the catalogue
    assert not {"retina", "hubble_deep_field"} & set(names)
    assert all(p.sha256 for p in CATALOGUE if p.source in photos.DEBIAN_PACKAGES)


def fake_packages(tmp_path, corrupt: str | None = None):
    """Stand-ins for the two unpacked .deb files, with the catalogue's hashes patched to match."""
    rng = np.random.default_rng(0)
    hashes = {}
    for photo in CATALOGUE:
        if photo.source not in photos.DEBIAN_PACKAGES:
            continue
        path = tmp_path / "x" / photo.source / photo.member
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray((rng.random((40, 64, 3)) * 255).astype(np.uint8)).save(path, format="JPEG")
        hashes[photo.name] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        if photo.name == corrupt:
            path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    return tmp_path / "x", hashes


def test_install_checks_every_file_and_writes_the_splits(tmp_path, monkeypatch) -> None:
    extracted, hashes = fake_packages(tmp_path)
    catalogue = tuple(
        photos.CataloguePhoto(p.name, p.source, p.member, p.split, p.licence, hashes.get(p.name, "")) for p in CATALOGUE
    )
    monkeypatch.setattr(photos, "CATALOGUE", catalogue)
    monkeypatch.setattr(photos, "_fetch_debs", lambda workdir: extracted)
    with pytest.raises(PhotosError, match="make photos"):
        photo_split("test", tmp_path / "photos")
    root = install_photos(tmp_path / "photos", say=lambda _: None)
    assert (root / "manifest.json").is_file()
    test = photo_split("test", root)
    assert set(test) == {p.name for p in catalogue if p.split == "test"}
    assert max(max(image.shape[:2]) for image in test.values()) <= photos.EVAL_SIDE
    train = photo_split("train", root)
    assert max(max(image.shape[:2]) for image in train.values()) <= photos.TRAIN_SIDE
    assert max(train["astronaut"].shape[:2]) == 512  # already small: not resized
    pairs = list(degraded_pairs("val", "gaussian_noise", 25.0, root=root).values())
    again = list(degraded_pairs("val", "gaussian_noise", 25.0, root=root).values())
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(pairs, again, strict=True))
    assert 0.08 < float(np.std(pairs[0][0] - pairs[0][1])) < 0.11  # sigma 25 / 255


def test_a_package_whose_files_changed_is_refused(tmp_path, monkeypatch) -> None:
    target = next(p for p in CATALOGUE if p.source in photos.DEBIAN_PACKAGES and p.split == "test")
    extracted, hashes = fake_packages(tmp_path, corrupt=target.name)
    catalogue = tuple(
        photos.CataloguePhoto(p.name, p.source, p.member, p.split, p.licence, hashes.get(p.name, "")) for p in CATALOGUE
    )
    monkeypatch.setattr(photos, "CATALOGUE", catalogue)
    monkeypatch.setattr(photos, "_fetch_debs", lambda workdir: extracted)
    with pytest.raises(PhotosError, match="package version differs"):
        install_photos(tmp_path / "photos", say=lambda _: None)
    assert not (tmp_path / "photos" / "manifest.json").exists()  # an incomplete install never looks complete


def test_the_installed_catalogue_matches_the_split() -> None:
    """`make test` installs the real photos first (`make photos`); their sizes and split are the catalogue's."""
    test = photo_split("test")
    assert set(test) == {p.name for p in CATALOGUE if p.split == "test"}
    assert all(image.dtype == np.float32 and image.shape[2] == 3 for image in test.values())
    assert all(max(image.shape[:2]) <= photos.EVAL_SIDE for image in test.values())
