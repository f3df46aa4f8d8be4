from collections import Counter
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image

from e2gan.errors import InputError
from e2gan.data.sources import (BUILTIN_PHOTOS, _crop, builtin_sources, folder_sources, is_greyscale, load_sources,
                           photos_by_split)


@lru_cache(maxsize=None)
def builtin(resolution=32, crops=8, seed=0, n_test=None, n_val=None):
    return tuple(builtin_sources(resolution, crops_per_photo=crops, seed=seed, n_test=n_test, n_val=n_val))


def arr(img):
    return np.asarray(img, dtype=np.float32)


def photo_of(source_id: str) -> str:
    return source_id.rsplit("-", 1)[0]


SPLIT_OF = {prefix: split for prefix, _, _, split in BUILTIN_PHOTOS}


# ---------- built-in photos ----------

def test_builtin_shape_and_ids():
    srcs = builtin()
    assert len(srcs) == 8 * len(BUILTIN_PHOTOS)
    assert len({s.id for s in srcs}) == len(srcs)
    assert "astronaut-03" in {s.id for s in srcs}
    for s in srcs:
        assert s.image.mode == "RGB" and s.image.size == (32, 32)
        assert s.split in ("train", "val", "test")


def test_builtin_is_deterministic():
    a, b = builtin(), builtin_sources(32, crops_per_photo=8, seed=0)
    assert [(s.id, s.split) for s in a] == [(s.id, s.split) for s in b]
    assert all(np.array_equal(arr(x.image), arr(y.image)) for x, y in zip(a, b))


def test_builtin_splits_are_disjoint_by_photograph():
    for srcs in (builtin(), builtin(32, 2, 1, n_test=20, n_val=10)):
        splits_of_photo: dict[str, set] = {}
        for s in srcs:
            splits_of_photo.setdefault(photo_of(s.id), set()).add(s.split)
        assert all(len(v) == 1 for v in splits_of_photo.values()), splits_of_photo
        assert {p: v.pop() for p, v in splits_of_photo.items()} == SPLIT_OF
    by_split = photos_by_split()
    assert len(by_split["test"]) >= 3 and len(by_split["val"]) >= 2
    assert len(by_split["train"]) > len(by_split["test"]) + len(by_split["val"])


def test_builtin_n_test_and_n_val_are_the_split_sizes_dealt_round_robin():
    srcs = builtin(16, 2, 0, n_test=10, n_val=5)
    counts = Counter(s.split for s in srcs)
    assert counts == {"train": 2 * len(photos_by_split()["train"]), "test": 10, "val": 5}
    for split in ("test", "val"):
        per_photo = Counter(photo_of(s.id) for s in srcs if s.split == split)
        assert set(per_photo) == set(photos_by_split()[split])
        assert max(per_photo.values()) - min(per_photo.values()) <= 1


def test_builtin_crop_k_ignores_the_split_size():
    small = {s.id: arr(s.image) for s in builtin(16, 2, 0, n_test=8, n_val=4)}
    big = {s.id: arr(s.image) for s in builtin(16, 2, 0, n_test=20, n_val=10)}
    assert set(small) < set(big)
    assert all(np.array_equal(v, big[k]) for k, v in small.items())


def test_builtin_eval_crops_are_colour_so_every_concept_gets_n():
    # Colour edits skip greyscale images: a grey test crop would leave them fewer than n_test.
    srcs = builtin(32, 1, 0, n_test=60, n_val=20)
    assert not [s.id for s in srcs if s.split != "train" and is_greyscale(s.image)]


def test_builtin_crops_are_mirrored_about_half_the_time():
    photo = Image.fromarray(np.tile(np.linspace(0, 255, 200, dtype=np.uint8), (100, 1)), "L").convert("RGB")
    grey = np.asarray(photo.convert("L"), dtype=np.float32)
    slopes = [np.sign(np.diff(arr(_crop(photo, grey, None, 16, k).convert("L")).mean(0)).mean()) for k in range(40)]
    assert 10 < sum(x > 0 for x in slopes) < 30 and all(x != 0 for x in slopes)


def test_builtin_crop_window_independent_of_resolution():
    # Same region at two resolutions: the 64² crop shrunk to 32² matches the 32² crop.
    small = {s.id: s.image for s in builtin(32)}
    for s in builtin(64)[:16]:
        diff = np.abs(arr(s.image.resize((32, 32), Image.Resampling.LANCZOS)) - arr(small[s.id])).mean()
        assert diff < 6.0, s.id


def test_builtin_seed_moves_crops_and_crop_k_ignores_count():
    a, b = builtin(32, 8, 0), builtin(32, 8, 1)
    assert sum(not np.array_equal(arr(x.image), arr(y.image)) for x, y in zip(a, b)) > len(a) // 2
    assert {s.id: s.split for s in a} == {s.id: s.split for s in b}
    few = {s.id: s.image for s in builtin(32, 3)}
    for s in a:
        if s.id in few:
            assert np.array_equal(arr(s.image), arr(few[s.id]))


def test_builtin_crops_are_not_flat():
    assert min(arr(s.image.convert("L")).std() for s in builtin()) > 5.0


def test_builtin_greyscale_photos_train_only():
    grey = {photo_of(s.id) for s in builtin() if is_greyscale(s.image)}
    assert grey == {"camera", "moon", "coins", "brick", "grass", "gravel"}
    assert {SPLIT_OF[p] for p in grey} == {"train"}


@pytest.mark.parametrize("key", ["n_test", "n_val"])
@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_split_sizes(key, bad):
    with pytest.raises(InputError, match=key):
        builtin_sources(16, crops_per_photo=1, **{key: bad})


def test_is_greyscale():
    rng = np.random.default_rng(0)
    g = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    assert is_greyscale(Image.fromarray(g, "L"))
    assert is_greyscale(Image.fromarray(np.stack([g, g, g], -1), "RGB"))
    noisy = np.clip(np.stack([g, g, g], -1).astype(int) + rng.integers(-2, 3, (16, 16, 3)), 0, 255)
    assert is_greyscale(Image.fromarray(noisy.astype(np.uint8), "RGB"))
    tinted = np.stack([g, g, g // 2], -1)
    assert not is_greyscale(Image.fromarray(tinted, "RGB"))


@pytest.mark.parametrize("bad", [0, -4, 2.5, True, "64"])
def test_bad_resolution(bad):
    with pytest.raises(InputError, match="resolution"):
        load_sources(None, bad)


def test_bad_crops_per_photo():
    with pytest.raises(InputError, match="crops_per_photo"):
        builtin_sources(32, crops_per_photo=0)


def test_load_sources_dispatch(tmp_path):
    Image.new("RGB", (20, 20), (10, 200, 30)).save(tmp_path / "x.png")
    assert [s.id for s in load_sources("builtin", 16, crops_per_photo=1)][0] == "astronaut-00"
    assert len(load_sources(None, 16, crops_per_photo=2)) == 2 * len(BUILTIN_PHOTOS)
    assert [s.id for s in load_sources(str(tmp_path), 16)] == ["x"]


# ---------- user folders ----------

def test_exif_orientation_applied(tmp_path):
    # Stored wide: red | green | blue columns. Orientation 6 displays it rotated 90° clockwise,
    # so red ends up on top and blue at the bottom.
    a = np.zeros((30, 60, 3), np.uint8)
    a[:, :20, 0] = 255
    a[:, 20:40, 1] = 255
    a[:, 40:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(a).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    (src,) = folder_sources(tmp_path, 30)
    out = arr(src.image)
    assert out[0, 15].argmax() == 0  # red top
    assert out[15, 15].argmax() == 1  # green centre
    assert out[-1, 15].argmax() == 2  # blue bottom


def _save_modes(folder):
    rgba = Image.new("RGBA", (20, 20), (0, 0, 0, 0))  # fully transparent -> white
    rgba.paste((200, 0, 0, 255), (0, 0, 10, 20))  # opaque red left half
    rgba.save(folder / "rgba.png")
    Image.new("LA", (20, 20), (0, 0)).save(folder / "la.png")
    p = Image.new("P", (20, 20), 1)
    p.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    p.save(folder / "pal.png")
    pt = Image.new("P", (20, 20), 0)
    pt.putpalette([0, 0, 0] * 256)
    pt.save(folder / "pal_transparent.png", transparency=0)
    Image.new("L", (20, 20), 77).save(folder / "grey.png")
    Image.fromarray(np.full((20, 20), 32896, np.uint16)).save(folder / "deep.png")  # 16-bit mid grey
    Image.new("CMYK", (20, 20), (0, 255, 255, 0)).save(folder / "cmyk.jpg", quality=95)
    Image.new("RGB", (20, 20), (0, 120, 0)).save(folder / "green.webp", lossless=True)


def test_any_mode_becomes_rgb(tmp_path):
    _save_modes(tmp_path)
    got = {s.id: arr(s.image) for s in folder_sources(tmp_path, 20)}
    assert all(a.shape == (20, 20, 3) for a in got.values())
    assert np.allclose(got["rgba"][10, 2], [200, 0, 0], atol=2)
    assert np.allclose(got["rgba"][10, 17], [255, 255, 255], atol=2)
    assert np.allclose(got["la"][10, 10], [255, 255, 255], atol=1)  # transparent black -> white
    assert np.allclose(got["pal"][10, 10], [0, 0, 255], atol=1)
    assert np.allclose(got["pal_transparent"][10, 10], [255, 255, 255], atol=1)
    assert np.allclose(got["grey"][10, 10], [77, 77, 77], atol=1)
    assert np.allclose(got["deep"][10, 10], [128, 128, 128], atol=1)
    assert np.allclose(got["cmyk"][10, 10], [255, 0, 0], atol=8)
    assert np.allclose(got["green"][10, 10], [0, 120, 0], atol=1)


def test_centre_crop_then_resize(tmp_path):
    a = np.zeros((20, 60, 3), np.uint8)
    a[:, 20:40] = 255  # only the central square is white
    Image.fromarray(a).save(tmp_path / "wide.png")
    (src,) = folder_sources(tmp_path, 10)
    assert src.image.size == (10, 10) and arr(src.image).min() > 250


def test_ids_sorted_sanitised_unique_and_non_images_ignored(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a").mkdir()
    for name in ["sub/B Img.PNG", "a_b.png", "a/b.png", "z.jpeg"]:
        Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    ids = [s.id for s in folder_sources(tmp_path, 8)]
    assert len(ids) == 4 and len(set(ids)) == 4
    assert "sub_b-img" in ids and "z" in ids
    assert sum(i.startswith("a_b-") for i in ids) == 2  # collision resolved by a path hash
    assert all(i == i.lower() and "/" not in i and " " not in i for i in ids)
    assert ids == [s.id for s in folder_sources(tmp_path, 8)]


def test_folder_split_is_stable_hash_of_id(tmp_path):
    for i in range(40):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / f"img{i:03d}.png")
    a = {s.id: s.split for s in folder_sources(tmp_path, 8)}
    b = {s.id: s.split for s in folder_sources(tmp_path, 16, seed=3)}
    assert a == b
    assert set(a.values()) == {"train", "val", "test"}
    assert Counter(a.values())["train"] > 15


def test_folder_caps_trim_val_and_test_only(tmp_path):
    for i in range(60):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / f"img{i:03d}.png")
    full = {s.id: s.split for s in folder_sources(tmp_path, 8)}
    capped = {s.id: s.split for s in load_sources(str(tmp_path), 8, n_test=2, n_val=1)}
    assert Counter(capped.values()) == {"train": Counter(full.values())["train"], "test": 2, "val": 1}
    assert all(full[i] == split for i, split in capped.items())  # nothing changes split
    # a cap keeps the same images when unrelated files are added
    Image.new("RGB", (8, 8), (0, 9, 0)).save(tmp_path / "zz-new.png")
    again = {i for i, sp in ((s.id, s.split) for s in folder_sources(tmp_path, 8, n_test=2, n_val=1)) if sp != "train"}
    assert len(again ^ {i for i, sp in capped.items() if sp != "train"}) <= 2


def test_corrupt_image_names_file(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"definitely not a png")
    with pytest.raises(InputError, match="bad.png"):
        folder_sources(tmp_path, 8)


def test_truncated_jpeg_names_file(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "cut.jpg"
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[:1500])
    with pytest.raises(InputError, match="cut.jpg"):
        folder_sources(tmp_path, 8)


def test_empty_missing_and_file_folders(tmp_path):
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(InputError, match="at least one"):
        folder_sources(tmp_path, 8)
    with pytest.raises(InputError, match="nope"):
        folder_sources(tmp_path / "nope", 8)
    with pytest.raises(InputError, match="not a file"):
        folder_sources(tmp_path / "readme.txt", 8)
