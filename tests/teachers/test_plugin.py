import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from e2gan.errors import InputError
from e2gan.data.concepts import Concept, load_concepts, select_concepts
from e2gan.teachers import Teacher, load_teacher
from e2gan.teachers.procedural import ProceduralTeacher

PLUGIN = textwrap.dedent('''
    from PIL import ImageOps

    class InvertTeacher:
        name = "invert"
        def __init__(self, strength=1.0):
            self.strength = strength
        def describe(self):
            return {"name": self.name, "strength": self.strength}
        def edit(self, images, instruction, seeds):
            return [ImageOps.invert(im.convert("RGB")) for im in images]

    def make_teacher():
        return InvertTeacher(strength=0.5)

    instance = InvertTeacher(strength=0.25)

    class Holder:
        factory = staticmethod(make_teacher)

    class NoEdit:
        name = "noedit"
        def describe(self):
            return {}

    def needs_args(path):
        return InvertTeacher()
''')


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    name = f"e2gan_test_plugin_{abs(hash(str(tmp_path)))}"  # unique: sys.modules caches by name
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def _inverts(teacher):
    img = Image.new("RGB", (6, 6), (10, 20, 30))
    out = teacher.edit([img], "anything", [0])[0]
    return np.asarray(out)[0, 0].tolist() == [245, 235, 225]


@pytest.mark.parametrize("attr,strength", [("InvertTeacher", 1.0), ("make_teacher", 0.5),
                                           ("instance", 0.25), ("Holder.factory", 0.5)])
def test_plugin_loads_class_factory_or_instance(plugin_module, attr, strength):
    t = load_teacher(f"{plugin_module}:{attr}")
    assert t.name == "invert" and t.describe()["strength"] == strength
    assert isinstance(t, Teacher)
    assert _inverts(t)


@pytest.mark.parametrize("attr,message", [
    ("NoEdit", "missing or wrong: edit"),
    ("nothing_here", "to define 'nothing_here'"),
    ("needs_args", "no arguments"),
    ("", "module:attr"),
])
def test_plugin_errors(plugin_module, attr, message):
    with pytest.raises(InputError, match=message):
        load_teacher(f"{plugin_module}:{attr}")


def test_plugin_missing_module():
    with pytest.raises(InputError, match="importable module"):
        load_teacher("no_such_module_e2gan_xyz:Teacher")


def test_load_teacher_dispatch():
    assert isinstance(load_teacher("procedural"), ProceduralTeacher)
    with pytest.raises(InputError, match="timbrooks/instruct-pix2pix.*--local-dir"):  # offline, not cached
        load_teacher("diffusers:timbrooks/instruct-pix2pix")
    with pytest.raises(InputError, match="'procedural', 'diffusers:<model>' or 'module:callable'"):
        load_teacher("magic")


# ---------- concept files ----------

def _write(tmp_path, text):
    path = tmp_path / "concepts.toml"
    path.write_text(textwrap.dedent(text))
    return path


GOOD = '''
    [concepts.warm]
    instruction = "give it a warm golden tone"
    role = "base"
    kind = "colour"

    [concepts.warmer]
    instruction = "make it even warmer"
    role = "new"
    kind = "variant"
    related = ["warm"]
    note = "a variant"
'''


def test_load_custom_concepts(tmp_path):
    cs = load_concepts(_write(tmp_path, GOOD))
    assert cs == [Concept("warm", "give it a warm golden tone", "base", "colour"),
                  Concept("warmer", "make it even warmer", "new", "variant", "a variant", ("warm",))]


@pytest.mark.parametrize("text,message", [
    ('[concepts.a]\ninstruction = "x"\nrole = "old"\nkind = "colour"', r"concepts.a.role 'old'.*one of base, new"),
    ('[concepts.a]\ninstruction = "x"\nrole = "base"\nkind = "vibe"', r"concepts.a.kind 'vibe'.*one of colour, tone"),
    ('[concepts.a]\ninstruction = "x"\nrole = "base"', r"concepts.a.kind.*required"),
    ('[concepts.a]\ninstruction = "x"\nrole = "base"\nkind = "tone"\ncolour = 1',
     r"concepts.a.colour.*one of the keys"),
    ('[concepts."../evil"]\ninstruction = "x"\nrole = "base"\nkind = "tone"', r"concept name '../evil'"),
    ('[concepts.A]\ninstruction = "x"\nrole = "base"\nkind = "tone"', r"concept name 'A'"),
    ('[concepts.a]\ninstruction = "x"\nrole = "new"\nkind = "variant"\nrelated = ["b"]', r"related 'b'"),
    ('[concepts.a]\ninstruction = " "\nrole = "base"\nkind = "tone"', r"non-empty instruction"),
    ('[stuff]\nx = 1', r"key 'stuff'"),
    ('[concepts.a\n', r"valid TOML"),
    ('', r"at least one"),
])
def test_bad_concept_files(tmp_path, text, message):
    with pytest.raises(InputError, match=message):
        load_concepts(_write(tmp_path, text))


def test_missing_concept_file(tmp_path):
    with pytest.raises(InputError, match="nope.toml"):
        load_concepts(tmp_path / "nope.toml")


def test_select_concepts():
    cs = load_concepts()
    assert [c.role for c in select_concepts(cs, "base")] == ["base"] * sum(c.role == "base" for c in cs)
    assert select_concepts(cs, "all") == cs
    assert [c.name for c in select_concepts(cs, ["sketch", "hue-60"])] == ["sketch", "hue-60"]
    assert [c.name for c in select_concepts(cs, "vignette, sketch")] == ["vignette", "sketch"]
    with pytest.raises(InputError, match="'sunglasses'.*hue-120.*sketch"):
        select_concepts(cs, ["sunglasses"])
