"""The fast path is chosen by what the CPU measures, never by what it is called.
No test here depends on which way the probe goes on the machine running it."""

import json

import pytest
import torch

from reslearn import speed
from reslearn.distributed import DistInfo
from reslearn.speed import BF16_MIN_SPEEDUP, SpeedSettings, bf16_probe, kernel_key
from reslearn.train import RunConfig, train
from reslearn.train.engine import agree_on_amp

from .helpers import train_cfg


@pytest.fixture
def probe(monkeypatch):
    """The probe's measurement replaced by a chosen speed-up; counts its calls."""
    calls = []

    def set_speedup(x):
        monkeypatch.setattr(speed, "measure_bf16_speedup", lambda: calls.append(x) or x)
        return calls

    monkeypatch.setattr(speed, "_PROBES", {})
    return set_speedup


@pytest.mark.parametrize("speedup, bf16", [(2.7, True), (1.45, True), (1.0, False), (0.1, False)])
def test_bf16_is_the_default_exactly_where_the_probe_measures_it_faster(probe, speedup, bf16):
    probe(speedup)
    s = SpeedSettings.from_run(RunConfig(), torch.device("cpu"))
    assert (s.amp_dtype == torch.bfloat16) is bf16 and s.channels_last
    assert f"{speedup:.2f}x" in s.reason and s.reason.endswith("bf16" if bf16 else "fp32")
    assert BF16_MIN_SPEEDUP > 1.0


def test_the_probe_runs_once_per_machine_and_is_cached(probe, tmp_path, monkeypatch):
    calls = probe(2.0)
    assert not bf16_probe().cached and bf16_probe().cached and len(calls) == 1
    cache = json.loads((tmp_path / "cache" / "bf16-probe.json").read_text())
    assert cache == {kernel_key(threads=1): 2.0}
    monkeypatch.setattr(speed, "_PROBES", {})  # a new process: the file answers
    assert bf16_probe().speedup == 2.0 and len(calls) == 1
    (tmp_path / "cache" / "bf16-probe.json").write_text("{not json")  # damaged: measured again
    monkeypatch.setattr(speed, "_PROBES", {})
    probe(0.5)
    assert not bf16_probe().use_bf16 and "0.50x" in bf16_probe().describe()


@pytest.mark.parametrize("amp, dtype", [("off", "float32"), ("bf16", "float32"), ("auto", "float64")])
def test_amp_and_dtype_override_the_probe_without_running_it(probe, amp, dtype):
    calls = probe(2.0)
    s = SpeedSettings.from_run(RunConfig(amp=amp, dtype=dtype), torch.device("cpu"))
    assert calls == []
    assert s.amp_dtype == (torch.bfloat16 if amp == "bf16" else None)
    assert s.dtype == (torch.float64 if dtype == "float64" else torch.float32)
    assert s.for_evaluation().amp_dtype is None  # evaluation stays in full precision


def test_bf16_with_float64_is_refused():
    with pytest.raises(ValueError, match="float64"):
        RunConfig(amp="bf16", dtype="float64")


def test_the_kernel_key_names_kernels_not_the_cpu_model():
    key = kernel_key(threads=3)
    assert torch.backends.cpu.get_cpu_capability() in key and key.endswith("threads=3")
    with open("/proc/cpuinfo") as f:
        names = {ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")}
    assert not any(n and n in key for n in names)


def test_the_run_header_gives_the_decision_and_its_ratio(probe, tiny_data, tmp_path, capsys):
    probe(0.42)
    cfg = train_cfg(tiny_data, tmp_path / "r", iterations=2)
    cfg.run.amp, cfg.run.progress = "auto", "log"
    train(cfg)
    header = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("reslearn "))
    assert "channels_last, fp32" in header and "0.42x fp32's speed here -> fp32" in header


class _Votes(DistInfo):
    def __init__(self, votes):
        super().__init__(rank=0, world_size=2)
        self.votes = votes

    def all_reduce_sum(self, t):
        return torch.tensor([self.votes])


def test_processes_that_disagree_on_bf16_all_train_in_fp32():
    fast = SpeedSettings(channels_last=True, amp_dtype=torch.bfloat16, reason="probe")
    assert agree_on_amp(fast, _Votes(2.0)).amp_dtype == torch.bfloat16
    assert agree_on_amp(fast, _Votes(1.0)).amp_dtype is None
