"""One training stage: seeded data, AdamW, resumable checkpoints, logs — on accelerate.

The same call runs on one CPU, one GPU or, under `accelerate launch`, many processes: each process
draws its own batches from a generator seeded by (stage seed, step, process index), so a resumed
run sees exactly the data it would have seen, and a finished stage is loaded instead of retrained.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

LossFn = Callable[[dict[str, nn.Module], Any, int], tuple[torch.Tensor, dict[str, float]]]
BatchFn = Callable[[np.random.Generator, int], Any]


@dataclass
class TrainSpec:
    """What one stage trains for and how."""

    name: str
    steps: int
    batch_size: int
    lr: float
    seed: int = 0
    weight_decay: float = 0.0
    grad_clip: float | None = 1.0
    warmup: int = 0
    checkpoint_every: int = 200
    log_every: int = 20


def stage_dir(run_dir: Path, name: str) -> Path:
    return Path(run_dir) / name


def is_done(run_dir: Path, name: str) -> bool:
    """Whether a stage has finished (its final weights are written)."""
    return (stage_dir(run_dir, name) / "done.json").exists()


def stage_seconds(run_dir: Path, name: str) -> float | None:
    """Training seconds of a finished stage (summed over resumed runs); None if unfinished."""
    done = stage_dir(run_dir, name) / "done.json"
    return float(json.loads(done.read_text())["seconds"]) if done.exists() else None


def load_final(run_dir: Path, name: str, modules: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Load a finished stage's final weights into `modules` (strict), in place."""
    final = stage_dir(run_dir, name) / "final"
    for key, module in modules.items():
        module.load_state_dict(load_file(final / f"{key}.safetensors"), strict=True)
    return modules


def default_accelerator(accelerator=None):
    """`accelerator`, or a new `accelerate.Accelerator` on the GPU when there is one, else CPU."""
    from accelerate import Accelerator

    return accelerator or Accelerator(cpu=not torch.cuda.is_available())


def _batch_rng(spec: TrainSpec, step: int, process: int) -> np.random.Generator:
    return np.random.default_rng([spec.seed, step, process])


def _lr_factor(spec: TrainSpec, step: int) -> float:
    if spec.warmup and step < spec.warmup:
        return (step + 1) / spec.warmup
    progress = (step - spec.warmup) / max(1, spec.steps - spec.warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: _to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(_to_device(v, device) for v in batch)
    return batch


def _save_checkpoint(folder: Path, modules, optimizer, step: int, elapsed: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / "state.pt.partial"
    torch.save(
        {"step": step, "optimizer": optimizer.state_dict(),
         "modules": {k: m.state_dict() for k, m in modules.items()}, "elapsed": elapsed},
        partial,
    )
    partial.replace(folder / "state.pt")


def _contiguous_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A state dict safetensors can write: contiguous, tied tensors cloned."""
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def run_stage(
    spec: TrainSpec,
    modules: dict[str, nn.Module],
    loss_fn: LossFn,
    make_batch: BatchFn,
    run_dir: Path,
    accelerator=None,
) -> dict[str, nn.Module]:
    """Train `modules` for `spec.steps` (resuming if a checkpoint exists); return them trained."""
    folder = stage_dir(run_dir, spec.name)
    if is_done(run_dir, spec.name):
        return load_final(run_dir, spec.name, modules)
    accelerator = default_accelerator(accelerator)
    params = [p for m in modules.values() for p in m.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.lr, weight_decay=spec.weight_decay)
    start, elapsed_before = 0, 0.0
    checkpoint = folder / "checkpoint" / "state.pt"
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        for key, module in modules.items():
            module.load_state_dict(state["modules"][key])
        optimizer.load_state_dict(state["optimizer"])
        start, elapsed_before = int(state["step"]), float(state.get("elapsed", 0.0))
    names = list(modules)
    prepared = accelerator.prepare(*modules.values(), optimizer)
    wrapped = dict(zip(names, prepared[:-1], strict=True))
    optimizer = prepared[-1]
    for module in wrapped.values():
        module.train()
    main = accelerator.is_main_process
    folder.mkdir(parents=True, exist_ok=True)
    log = (folder / "log.jsonl").open("a") if main else None
    began = time.time()
    bar = tqdm(total=spec.steps, initial=start, desc=spec.name, disable=not main, unit="step")
    loss_value = float("nan")
    for step in range(start, spec.steps):
        for group in optimizer.param_groups:
            group["lr"] = spec.lr * _lr_factor(spec, step)
        rng = _batch_rng(spec, step, accelerator.process_index)
        batch = _to_device(make_batch(rng, spec.batch_size), accelerator.device)
        loss, logs = loss_fn(wrapped, batch, step)
        optimizer.zero_grad(set_to_none=True)
        accelerator.backward(loss)
        if spec.grad_clip:
            accelerator.clip_grad_norm_(params, spec.grad_clip)
        optimizer.step()
        loss_value = float(loss.detach())
        if not math.isfinite(loss_value):
            raise FloatingPointError(f"{spec.name}: loss became {loss_value} at step {step}")
        bar.update(1)
        if main and (step % spec.log_every == 0 or step == spec.steps - 1):
            record = {"step": step, "loss": loss_value, **logs,
                      "lr": optimizer.param_groups[0]["lr"],
                      "seconds": round(time.time() - began, 2)}
            log.write(json.dumps(record) + "\n")
            log.flush()
            bar.set_postfix(loss=f"{loss_value:.4f}")
        if main and (step + 1) % spec.checkpoint_every == 0 and step + 1 < spec.steps:
            unwrapped = {k: accelerator.unwrap_model(m) for k, m in wrapped.items()}
            _save_checkpoint(folder / "checkpoint", unwrapped, optimizer, step + 1,
                             elapsed_before + time.time() - began)
        accelerator.wait_for_everyone()
    bar.close()
    unwrapped = {k: accelerator.unwrap_model(m).eval() for k, m in wrapped.items()}
    if main:
        log.close()
        final = folder / "final"
        final.mkdir(parents=True, exist_ok=True)
        for key, module in unwrapped.items():
            save_file(_contiguous_state(module), final / f"{key}.safetensors")
        done = {"spec": asdict(spec), "final_loss": loss_value,
                "seconds": round(elapsed_before + time.time() - began, 1),
                "processes": accelerator.num_processes}
        (folder / "done.json").write_text(json.dumps(done, indent=2))
    accelerator.wait_for_everyone()
    return unwrapped
