"""Process facts outside a process group: one process, the launcher's RANK decides who writes; leaving a group."""

from rlhf_ads import processes


def test_one_process_is_the_main_one(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert (processes.world_size(), processes.rank(), processes.is_main_process()) == (1, 0, True)
    processes.barrier()  # nothing to wait for


def test_before_the_group_forms_the_launchers_rank_decides(monkeypatch):
    monkeypatch.setenv("RANK", "1")
    assert processes.rank() == 1 and not processes.is_main_process()


def test_deepspeed_cpu_backend_only_under_a_deepspeed_launch(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    assert processes.deepspeed_cpu_backend() is None


def test_leave_group_destroys_the_group_and_is_harmless_without_one(tmp_path):
    import torch.distributed as torch_dist

    processes.leave_group()  # no group: nothing to do
    torch_dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    assert processes.world_size() == 1 and torch_dist.is_initialized()
    processes.leave_group()
    assert not torch_dist.is_initialized()
