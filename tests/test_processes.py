"""Process facts outside a process group: one process, the launcher's RANK decides who writes."""

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
