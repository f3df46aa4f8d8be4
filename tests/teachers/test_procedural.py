import importlib.resources
import json

import numpy as np
import pytest
from PIL import Image

from e2gan import __version__
from e2gan.errors import InputError
from e2gan.data.concepts import load_concepts, select_concepts
from e2gan.data.concepts import NAME_RE
from e2gan.teachers.procedural import EDITS, ProceduralTeacher

T = ProceduralTeacher()


def photo(size=(48, 40)) -> Image.Image:
    # Non-square on purpose: edits must keep any size.
    path = importlib.resources.files("skimage.data") / "astronaut.png"
    with importlib.resources.as_file(path) as p:
        return Image.open(p).convert("RGB").crop((100, 0, 400, 250)).resize(size, Image.Resampling.LANCZOS)


def grey_photo() -> Image.Image:
    return photo().convert("L").convert("RGB")


def arr(img):
    return np.asarray(img, dtype=np.float32)


def test_at_least_14_edits():
    assert len(EDITS) >= 14
    assert all(NAME_RE.match(n) for n in EDITS)


@pytest.mark.parametrize("name", sorted(EDITS))
def test_edit_is_deterministic_changes_image_keeps_size(name):
    img = photo()
    a = T.edit([img], name, [7])[0]
    b = T.edit([img], name, [7])[0]
    assert a.mode == "RGB" and a.size == img.size
    assert np.array_equal(arr(a), arr(b))
    assert np.abs(arr(a) - arr(img)).mean() > 3.0, "edit left the image (nearly) unchanged"


@pytest.mark.parametrize("name", sorted(EDITS))
def test_seed_use_is_declared(name):
    img = photo()
    a, b = T.edit([img, img], name, [1, 2])
    assert np.array_equal(arr(a), arr(b)) != EDITS[name].uses_seed


@pytest.mark.parametrize("name", sorted(EDITS))
def test_colour_only_flag_matches_behaviour_on_grey(name):
    img = grey_photo()
    out = T.edit([img], name, [0])[0]
    unchanged = np.abs(arr(out) - arr(img)).max() <= 2
    assert unchanged == EDITS[name].colour_only
    assert T.affects(img, name) == (not EDITS[name].colour_only)
    assert T.affects(photo(), name)


def test_hue_rotations_on_pure_colours():
    red = Image.new("RGB", (4, 4), (255, 0, 0))
    assert arr(T.edit([red], "hue-120", [0])[0])[0, 0].tolist() == [0, 255, 0]
    assert arr(T.edit([red], "hue-60", [0])[0])[0, 0].tolist() == [255, 255, 0]
    assert arr(T.edit([red], "hue-180", [0])[0])[0, 0].tolist() == [0, 255, 255]


FLAT = Image.new("RGB", (33, 33), (200, 200, 200))
RAMP = Image.fromarray(np.repeat(np.linspace(0, 255, 40).astype(np.uint8)[None, :, None], 3, 2).repeat(10, 0))


def _red_minus_blue(a):
    return float((a[..., 0] - a[..., 2]).mean())


def _dim():
    return Image.fromarray((arr(photo()) * 0.4 + 40).astype(np.uint8))


# edit -> (input image, check on the output array): what each edit is meant to do.
BEHAVIOUR = {
    "vignette": (lambda: FLAT, lambda o: o[16, 16, 0] > 195 and o[0, 0, 0] < 60 and o[0, 16, 0] > o[0, 0, 0]),
    "sunset": (lambda: FLAT, lambda o: o[0, 16, 0] > o[0, 16, 2] and o[-1, 16, 2] > o[-1, 16, 0]),
    "mirror": (photo, lambda o: np.array_equal(o, o[:, ::-1])),
    "auto-levels": (_dim, lambda o: o.min() <= 5 and o.max() >= 250),
    "invert-highlights": (lambda: RAMP, lambda o: o[5, -1, 0] < 10 and o[5, 0, 0] < 10 and o[5, 20, 0] > 100),
    "pixelate": (lambda: photo((64, 64)), lambda o: np.array_equal(o, o[::4, ::4].repeat(4, 0).repeat(4, 1))),
    "greyscale": (photo, lambda o: np.array_equal(o[..., 0], o[..., 2])),
    "sepia": (photo, lambda o: (o[..., 0] >= o[..., 1]).all() and (o[..., 1] >= o[..., 2]).all()),
    "warm": (photo, lambda o: _red_minus_blue(o) > _red_minus_blue(arr(photo())) + 20),
    "sketch": (photo, lambda o: np.median(o) > 200),  # mostly white paper
}


@pytest.mark.parametrize("name", sorted(BEHAVIOUR))
def test_edit_does_what_it_says(name):
    make_input, check = BEHAVIOUR[name]
    assert check(arr(T.edit([make_input()], name, [0])[0]))


def test_resolve_by_name_or_instruction():
    assert T.resolve("sketch").name == "sketch"
    assert T.resolve("  Turn it into a PENCIL   sketch. ").name == "sketch"
    img = photo()
    by_name = T.edit([img], "cartoon", [0])[0]
    by_text = T.edit([img], EDITS["cartoon"].instruction, [0])[0]
    assert np.array_equal(arr(by_name), arr(by_text))


def test_unknown_instruction_lists_edits():
    with pytest.raises(InputError, match="put on sunglasses.*sketch"):
        T.edit([photo()], "put on sunglasses", [0])


def test_seed_count_must_match():
    with pytest.raises(InputError, match="one seed per image"):
        T.edit([photo(), photo()], "warm", [0])


def test_describe_is_json_and_complete():
    d = T.describe()
    assert json.loads(json.dumps(d)) == d
    assert d["name"] == T.name == "procedural" and d["version"] == __version__
    assert d["edits"] == sorted(EDITS)


def test_edits_work_at_256_and_odd_sizes():
    for size in [(256, 256), (31, 17)]:
        img = photo(size)
        for name in ("cartoon", "pixelate", "emboss", "mirror", "neon-edges"):
            assert T.edit([img], name, [0])[0].size == size


# ---------- the packaged concept split ----------

def test_packaged_concepts_split():
    cs = load_concepts()
    base, new = select_concepts(cs, "base"), select_concepts(cs, "new")
    assert len(base) >= 8 and len(new) >= 4
    assert len({c.name for c in cs}) == len(cs)
    assert all(NAME_RE.match(c.name) for c in cs)
    for c in cs:  # every instruction is one the procedural teacher understands, for that edit
        assert T.resolve(c.instruction).name == c.name
    kinds = {c.kind for c in new}
    assert {"variant", "composition", "spatial"} <= kinds
    base_names = {c.name for c in base}
    for c in new:
        assert c.name not in base_names
        if c.kind in ("variant", "composition"):
            assert c.related and set(c.related) <= base_names
    assert any(c.kind == "texture" and not c.related for c in new)  # an unrelated control
    # compositions known to separate nothing are avoided
    assert not any(set(c.related) in ({"warm", "posterize"}, {"emboss", "invert"}) for c in new)
