"""A pretrained folder's fingerprint: what from_pretrained loads counts, nothing else does."""
import shutil

from e2gan.teachers.pretrained import fingerprint_folder
from tests.tiny_pipelines import ip2p_dir


def test_fingerprint_covers_what_is_loaded(tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(ip2p_dir(), folder)
    base = fingerprint_folder(folder)
    assert "unet/diffusion_pytorch_model.safetensors" in base and "model_index.json" in base
    (folder / "instruct-pix2pix-00-22000.ckpt").write_bytes(b"x")  # a full-repo download's extras
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"x")
    (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").write_bytes(b"x")
    assert fingerprint_folder(folder) == base
    assert set(fingerprint_folder(folder, "fp16")) - set(base) == {"unet/diffusion_pytorch_model.fp16.safetensors"}
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1  # a fine-tune of the same architecture
    weights.write_bytes(bytes(data))
    assert fingerprint_folder(folder)["vae/diffusion_pytorch_model.safetensors"] != \
        base["vae/diffusion_pytorch_model.safetensors"]
