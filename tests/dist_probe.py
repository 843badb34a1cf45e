"""Worker of tests/test_distributed.py, started by torchrun (two processes, gloo on CPU).

python -m torch.distributed.run --standalone --nproc-per-node 2 tests/dist_probe.py MODE OUT [DATA]
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as tdist

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests package

from reslearn.data import load_cifar10  # noqa: E402
from reslearn.data.device import DeviceData  # noqa: E402
from reslearn.distributed import init_from_env  # noqa: E402

CPU = torch.device("cpu")


def data_mode(out: Path, data_dir: str) -> None:
    """Which training images each rank receives in epoch 0 (indices marked in pixels)."""
    dist = init_from_env(CPU)
    arrays = load_cifar10(data_dir, download=False)
    n = len(arrays.train_x)
    arrays.train_x[:, 0, 0, 0] = torch.arange(n) // 256  # the image's index, in two pixels
    arrays.train_x[:, 0, 0, 1] = torch.arange(n) % 256
    d = DeviceData(arrays, batch_size=32, seed=1, device=CPU, augment=False, dist=dist)
    d.normalizer = lambda x: x  # raw uint8 out, to read the marks
    seen = [[int(x[0, 0, 0]) * 256 + int(x[0, 0, 1]) for x in xb] for xb, _ in d.batches(0, 0)]
    (out / f"data{dist.rank}.json").write_text(json.dumps(seen))


def train_mode(out: Path, data_dir: str) -> None:
    """A few DDP steps through the engine; every rank dumps the parameters it ends with."""
    from reslearn.checkpoint import unwrap
    from reslearn.train import DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, engine

    cfg = TrainConfig(
        ModelConfig("cifar_resnet8"),
        DataConfig(data_dir, download=False),
        OptimConfig(batch_size=32, iterations=5),
        RunConfig(out=str(out / "run"), device="cpu", progress="none", tensorboard=False, amp="off"),
    )
    cfg, run_dir = engine.start_run(cfg)
    tr = engine.build(cfg, run_dir)
    engine.loop(tr, 5)
    torch.save(unwrap(tr.model).state_dict(), out / f"params{tr.dist.rank}.pt")


def die_mode(out: Path) -> None:
    """Rank 1 is killed while rank 0 waits in a collective: the job must end, not hang."""
    dist = init_from_env(CPU)
    t = torch.ones(1)
    tdist.all_reduce(t)
    if dist.rank == 1:
        time.sleep(1)
        os.kill(os.getpid(), signal.SIGKILL)
    deadline = time.time() + 600
    while time.time() < deadline:
        tdist.all_reduce(t)
        time.sleep(0.05)


def flaky_mode(out: Path, argv: list[str]) -> None:
    """``reslearn train ARGV`` whose rank 1 is killed once, at its second report; torchrun's
    --max-restarts restarts the job and --auto-resume continues from the last checkpoint."""
    from reslearn.cli import main
    from reslearn.train import engine

    marker = out / "killed-once"
    report = engine.report

    def report_then_die(tr):
        row = report(tr)
        if tr.dist.rank == 1 and tr.state.iteration >= 4 and not marker.exists():
            marker.write_text(str(tr.state.iteration))
            os.kill(os.getpid(), signal.SIGKILL)
        return row

    engine.report = report_then_die
    if os.environ.get("TORCHELASTIC_RESTART_COUNT") == "1" and os.environ["RANK"] == "0":
        _slow_after_rendezvous(3.0)
    sys.exit(main(argv))


def signal_mode(argv: list[str]) -> None:
    """``reslearn train ARGV`` in which only rank 1 receives SIGTERM, during its second step
    (a signal to one worker, or one that reaches the workers at different moments)."""
    from reslearn.cli import main
    from reslearn.train import TrainStep

    step, calls = TrainStep.__call__, [0]

    def signalling_step(self, x, y):
        out = step(self, x, y)
        calls[0] += 1
        if os.environ["RANK"] == "1" and calls[0] == 2:
            signal.raise_signal(signal.SIGTERM)
        return out

    TrainStep.__call__ = signalling_step
    sys.exit(main(argv))


def _slow_after_rendezvous(seconds: float) -> None:
    """Rank 0 of the restarted job pauses between reaching torchrun's store and joining
    the process group, so rank 1 reads the store first, while it still holds what rank 0
    published in the first attempt: the stale-key race of pytorch/pytorch#135712, made
    certain (both torch's own init path and reslearn's go through ``rendezvous``)."""
    import torch.distributed.distributed_c10d as c10d

    real = c10d.rendezvous

    def slow(*args, **kwargs):
        for found in real(*args, **kwargs):
            time.sleep(seconds)
            yield found

    c10d.rendezvous = tdist.rendezvous = slow


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode in ("data", "train"):
        (data_mode if mode == "data" else train_mode)(out, sys.argv[3])
        # As reslearn.train.launch does: a process group left to interpreter exit can end
        # the process with SIGABRT ("terminate called without an active exception"; the
        # train mode failed so about one run in three on machine Z4).
        tdist.destroy_process_group()
    elif mode == "die":
        die_mode(out)
    elif mode == "flaky":
        flaky_mode(out, sys.argv[3:])
    elif mode == "signal":
        signal_mode(sys.argv[3:])
    else:
        raise SystemExit(f"unknown mode {mode!r}")
