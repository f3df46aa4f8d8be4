"""Stand-in weights say so: the note inside the file is found, a real-looking file has none."""
from __future__ import annotations

import json

import torch
from torch import nn

from e2gan import stand_in


class _Tiny(nn.Module):
    def forward(self, x):
        return x * 2


def test_torchscript_note_is_read_from_the_extra_file_and_absent_without_it(tmp_path):
    labelled, plain = tmp_path / "a.pt", tmp_path / "b.pt"
    torch.jit.save(torch.jit.script(_Tiny()), str(labelled), _extra_files={stand_in.KEY: "stand-in, random weights (t)"})
    torch.jit.save(torch.jit.script(_Tiny()), str(plain))
    assert stand_in.weights_note(labelled) == "stand-in, random weights (t)"
    assert stand_in.weights_note(plain) is None
    assert torch.jit.load(str(labelled))(torch.ones(1)).item() == 2  # the note does not change the model


def test_state_dict_note_is_a_string_entry_and_loads_with_weights_only(tmp_path):
    labelled, plain = tmp_path / "a.pth", tmp_path / "b.pth"
    torch.save({"features.0.weight": torch.ones(2), stand_in.KEY: "stand-in, random weights (s)"}, labelled)
    torch.save({"features.0.weight": torch.ones(2)}, plain)
    assert stand_in.weights_note(labelled) == "stand-in, random weights (s)"
    assert stand_in.weights_note(plain) is None
    assert torch.load(labelled, weights_only=True)[stand_in.KEY].startswith("stand-in")
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    assert stand_in.weights_note(tmp_path / "junk.pth") is None
    assert stand_in.weights_note(tmp_path / "missing.pth") is None


def test_pipeline_folder_and_data_folder_notes(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "X", stand_in.INDEX_KEY: "stand-in, p"}))
    assert stand_in.folder_note(tmp_path) == "stand-in, p"
    assert stand_in.folder_note(tmp_path / "nowhere") is None
    (tmp_path / "teacher.json").write_text(json.dumps({"name": "diffusers", "stand_in": "stand-in, p"}))
    assert stand_in.teacher_protocol(tmp_path) == {"teacher_stand_in": "stand-in, p"}
    (tmp_path / "teacher.json").write_text(json.dumps({"name": "procedural"}))
    assert stand_in.teacher_protocol(tmp_path) == {}


def test_protocol_stand_ins_names_each_labelled_part():
    p = {"backbone": {"name": "inception", "stand_in": "x"}, "perceptual_weights": {"trunk": "t"}}
    assert stand_in.protocol_stand_ins(p) == ["FID/KID backbone"]
    p["perceptual_weights"]["stand_in"] = "y"
    p["teacher_stand_in"] = "z"
    assert stand_in.protocol_stand_ins(p) == ["FID/KID backbone", "perceptual", "teacher"]
    assert stand_in.protocol_stand_ins({"backbone": {"name": "effnet-lite0"}}) == []
