"""The environment record: which CPU kernels a result's float32 round-off came from."""
from e2gan.env import cpu_info, environment


def test_cpu_info_reads_the_model_and_the_kernel_relevant_flags(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text("processor\t: 0\nmodel name\t: Some CPU @ 2.6GHz\nflags\t\t: fpu sse avx2 fma avx512f amx_tile\n"
                 "processor\t: 1\nmodel name\t: Some CPU @ 2.6GHz\n")
    assert cpu_info(f) == {"model": "Some CPU @ 2.6GHz", "isa": ["avx2", "fma", "avx512f", "amx_tile"]}
    assert cpu_info(tmp_path / "missing") == {"model": None, "isa": []}


def test_environment_records_the_cpu_and_whether_it_has_bf16():
    cpu = environment("cpu", 0)["cpu"]
    assert set(cpu) == {"model", "isa", "torch_capability", "bf16"} and isinstance(cpu["bf16"], bool)
