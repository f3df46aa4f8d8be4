"""verify_manifest's per-process memo: a second check reads no unchanged file, yet sees any change."""
import os
import shutil

import pytest
from PIL import Image

import e2gan.data.manifest as manifest
from e2gan.data.manifest import MANIFEST, read_manifest, verify_manifest
from e2gan.errors import InputError


@pytest.fixture
def folder(micro_data, tmp_path):
    """A private copy of the micro data (tests here edit its files)."""
    copy = tmp_path / "data"
    shutil.copytree(micro_data, copy)
    return copy


@pytest.fixture
def hashed(monkeypatch):
    """The files sha256_file reads, in order."""
    seen = []
    real = manifest.sha256_file
    monkeypatch.setattr(manifest, "sha256_file", lambda p: seen.append(str(p)) or real(p))
    return seen


def _target(folder):
    return folder / read_manifest(folder)[0]["target"]


def test_second_check_hashes_nothing_and_returns_the_same_records(folder, hashed):
    first = verify_manifest(folder)
    n_files = len({r[f] for r in first for f in ("source", "target")})
    assert len(hashed) == n_files
    first[0]["concept"] = "edited by a caller"
    again = verify_manifest(folder)
    assert len(hashed) == n_files  # every stat unchanged: nothing read again
    assert again == read_manifest(folder)  # a caller's edit of what it got does not leak into the memo


def test_pair_file_changed_after_a_check_is_caught(folder, hashed):
    verify_manifest(folder)
    path = _target(folder)
    before = path.stat()
    with Image.open(path) as im:
        size = im.size
    Image.new("RGB", size, (1, 2, 3)).save(path)  # another image in the same file
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # even with its old mtime back
    n = len(hashed)
    with pytest.raises(InputError, match="sha256"):
        verify_manifest(folder)
    assert hashed[n:] == [str(path.resolve())]  # only the changed file was read again
    assert len(verify_manifest(folder, check_hashes=False)) == len(read_manifest(folder))


def test_file_deleted_or_replaced_by_an_outside_link_after_a_check_is_caught(folder, tmp_path):
    verify_manifest(folder)
    path = _target(folder)
    outside = tmp_path / "outside.png"
    shutil.copy2(path, outside)
    path.unlink()
    with pytest.raises(InputError, match="an existing file"):
        verify_manifest(folder)
    path.symlink_to(outside)  # same bytes, but outside the data folder
    with pytest.raises(InputError, match="inside the data folder"):
        verify_manifest(folder)


def test_manifest_changed_after_a_check_is_read_again(folder):
    records = verify_manifest(folder)
    path = folder / MANIFEST
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]))  # one pair fewer
    assert len(verify_manifest(folder)) == len(records) - 1
