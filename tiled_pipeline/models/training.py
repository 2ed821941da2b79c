"""The training loop shared by the trained models (FastFlow, Reverse Distillation).

One function, :func:`train`, runs a model's loss over a stream of tile batches for a number of
epochs. Around it: re-batching to the configured batch size, a deterministic held-out split of
normal tiles for early stopping, scoped seeding and mixed precision on CUDA.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from tiled_pipeline.models.base import FitReport, check_images

logger = logging.getLogger(__name__)

LossFn = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class TrainingResult:
    """What :func:`train` did.

    Attributes:
        losses: mean training loss per image, one value per epoch run.
        val_losses: mean held-out loss per image and epoch; empty without early stopping.
        best_epoch: 0-based epoch whose weights were kept; the last epoch without early stopping.
        n_images: training images per epoch (held-out images excluded).
        n_val_images: held-out images (0 without early stopping).
    """

    losses: list[float]
    val_losses: list[float] = field(default_factory=list)
    best_epoch: int = 0
    n_images: int = 0
    n_val_images: int = 0

    def report(self, seconds: float) -> FitReport:
        """The model-facing :class:`FitReport` of this run, taking ``seconds`` of wall time."""
        extra = {"epochs_run": float(len(self.losses)), "best_epoch": float(self.best_epoch)}
        if self.val_losses:
            extra["best_val_loss"] = self.val_losses[self.best_epoch]
            extra["n_val_images"] = float(self.n_val_images)
        return FitReport(self.n_images, seconds, list(self.losses), extra)


def check_schedule(epochs: int, batch_size: int, val_fraction: float, patience: int) -> None:
    """Validate the training fields shared by the trained models' configs."""
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(
            f"val_fraction must be in [0, 1), got {val_fraction}; use 0 to train without "
            "early stopping"
        )
    if patience < 1:
        raise ValueError(f"early_stopping_patience must be >= 1 epoch, got {patience}")


def rebatch(batches: Iterable[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Regroup a stream of (b, 3, th, tw) tensors into batches of ``batch_size`` images.

    The stream's own chunking does not matter: the same images in the same order give the same
    batches. The last batch holds the remainder; a lone trailing image joins the batch before it
    (batch norm in training mode needs two values per channel), so with ``batch_size`` > 1 a
    batch holds one image only when the whole stream does.

    Raises:
        ValueError: when tiles change size within the stream.
    """
    pending: list[torch.Tensor] = []
    count = 0
    tile: tuple[int, ...] | None = None
    for images in batches:
        images = check_images(images, "training")
        tile = tile or tuple(images.shape[2:])
        if tuple(images.shape[2:]) != tile:
            raise ValueError(
                f"all tiles of one fit must share a size; got {tuple(images.shape[2:])} after "
                f"{tile}; fit one model per tile size"
            )
        pending.append(images)
        count += len(images)
        if count < 2 * batch_size:
            continue
        # Hold one full batch back so that a lone final image can still join it.
        merged = torch.cat(pending) if len(pending) > 1 else pending[0]
        start = 0
        while count - start >= 2 * batch_size:
            yield merged[start : start + batch_size]
            start += batch_size
        pending, count = [merged[start:]], count - start
    if count == 0:
        return
    rest = torch.cat(pending)
    if count - batch_size >= 2:
        yield rest[:batch_size]
        rest = rest[batch_size:]
    yield rest


def is_held_out(index: int, val_fraction: float) -> bool:
    """Whether batch ``index`` (0-based) of an epoch is held out for validation.

    Spreads the held-out batches evenly: with 0.25, batches 3, 7, 11, ... are held out. Batch 0 is
    always trained on, and no length of the stream is needed.
    """
    return math.floor((index + 1) * val_fraction) > math.floor(index * val_fraction)


@contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Seed torch's global generators inside the block and restore them afterwards.

    Args:
        seed: the seed for the CPU generator (and the CUDA generators of ``device``).
        device: forks the CUDA generator of this device too when it is a CUDA device.
    """
    devices = []
    if device is not None and device.type == "cuda":
        devices = [torch.cuda.current_device() if device.index is None else device.index]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def _autocast_and_scaler(
    device: torch.device,
) -> tuple[Callable[[], AbstractContextManager[Any]], torch.amp.GradScaler | None]:
    """bf16 autocast on CUDA where supported, else fp16 with a gradient scaler; none on CPU."""
    if device.type != "cuda":
        return nullcontext, None
    if torch.cuda.is_bf16_supported():
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16), None
    return lambda: torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")


class _Run:
    """State of one :func:`train` call: optimizer steps, held-out batches, best weights."""

    def __init__(
        self,
        trainable: nn.Module,
        loss_fn: LossFn,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        desc: str,
    ) -> None:
        self.desc = desc
        self.trainable = trainable
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.device = device
        self.autocast, self.scaler = _autocast_and_scaler(device)
        self.losses: list[float] = []
        self.val_losses: list[float] = []
        self.val_batches: list[torch.Tensor] = []
        self.n_images = 0
        self.best_epoch = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def step(self, images: torch.Tensor) -> torch.Tensor:
        """One optimizer step on a batch; returns the batch's summed loss (detached, on device)."""
        images = images.to(self.device, non_blocking=True)
        self.optimizer.zero_grad(set_to_none=True)
        with self.autocast():
            loss = self.loss_fn(images)
        if self.scaler is None:
            loss.backward()
            self.optimizer.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        return loss.detach().float() * len(images)

    def train_epoch(self, stream: Iterable[torch.Tensor], val_fraction: float) -> float:
        """Train over one pass of ``stream``; the first pass also collects the held-out batches.

        Returns:
            the mean training loss per image.
        """
        first = not self.losses
        self.trainable.train()
        total = torch.zeros((), device=self.device)
        n_images = 0
        for index, images in enumerate(stream):
            if val_fraction > 0 and is_held_out(index, val_fraction):
                if first:  # a copy, so the cache does not pin the larger tensor it was cut from
                    self.val_batches.append(images.clone())
                continue
            total += self.step(images)
            n_images += len(images)
        if n_images == 0:
            raise ValueError("batches yielded no images; fit needs at least one normal tile")
        self.n_images = n_images
        return total.item() / n_images

    @torch.no_grad()
    def validate(self) -> float:
        """Mean loss per held-out image with the current weights, in eval mode."""
        self.trainable.eval()
        total = torch.zeros((), device=self.device)
        for images in self.val_batches:
            with self.autocast():
                total += self.loss_fn(images.to(self.device)).float() * len(images)
        return total.item() / sum(len(images) for images in self.val_batches)

    def end_epoch(self, epoch: int, loss: float, patience: int) -> bool:
        """Record an epoch's loss, validate, keep the best weights; True when it is time to stop."""
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"{self.desc}: training loss is {loss} at epoch {epoch}; lower the learning rate"
            )
        self.losses.append(loss)
        if not self.val_batches:
            self.best_epoch = epoch
            return False
        self.val_losses.append(self.validate())
        if epoch == 0 or self.val_losses[-1] < self.val_losses[self.best_epoch]:
            self.best_epoch = epoch
            self.best_state = copy.deepcopy(self.trainable.state_dict())
        return epoch - self.best_epoch >= patience

    def result(self) -> TrainingResult:
        """Restore the best weights (early stopping only) and summarize the run."""
        if self.best_state is not None:
            self.trainable.load_state_dict(self.best_state)
        self.trainable.eval()
        n_val = sum(len(images) for images in self.val_batches)
        return TrainingResult(self.losses, self.val_losses, self.best_epoch, self.n_images, n_val)


def train(
    trainable: nn.Module,
    loss_fn: LossFn,
    batches: Iterable[torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    device: torch.device,
    val_fraction: float = 0.0,
    patience: int = 3,
    desc: str = "training",
) -> TrainingResult:
    """Minimise ``loss_fn`` over ``batches`` for up to ``epochs`` epochs.

    Args:
        trainable: the modules that learn; switched to train mode for training and to eval mode
            for validation and at the end. Their state is what early stopping restores.
        loss_fn: (B, 3, th, tw) images on ``device`` -> scalar loss, the mean over the batch.
        batches: a re-iterable stream of (b, 3, th, tw) float tensors in [0, 1], iterated once
            per epoch and regrouped into batches of ``batch_size`` (see :func:`rebatch`). Shuffle
            upstream if wanted: the order of the stream is kept.
        optimizer: over the parameters of ``trainable``.
        epochs: maximum number of passes.
        batch_size: images per optimizer step.
        seed: seeds torch's generators for the run, scoped (global state is restored after).
        device: where batches are moved; CUDA trains under bf16 autocast (fp16 with a gradient
            scaler where bf16 is unsupported), CPU in float32.
        val_fraction: share of batches held out for early stopping (chosen by
            :func:`is_held_out`, the same every epoch); 0 trains on all batches for all epochs.
            Held-out batches are kept in memory, as the stream gave them.
        patience: epochs without a lower held-out loss before stopping; the weights of the best
            epoch are then restored.
        desc: progress-bar and log label.

    Raises:
        ValueError: for an empty stream, or from ``loss_fn`` (e.g. tiles too small).
        FloatingPointError: when an epoch's loss is not finite.
    """
    check_schedule(epochs, batch_size, val_fraction, patience)
    run = _Run(trainable, loss_fn, optimizer, device, desc)
    with seeded(seed, device), tqdm(range(epochs), desc=desc, unit="epoch", leave=False) as bar:
        for epoch in bar:
            loss = run.train_epoch(rebatch(batches, batch_size), val_fraction)
            if epoch == 0 and val_fraction > 0 and not run.val_batches:
                logger.warning(
                    "%s: val_fraction=%s held out no batch of %d images; early stopping is off",
                    desc, val_fraction, run.n_images,
                )  # fmt: skip
            stop = run.end_epoch(epoch, loss, patience)
            bar.set_postfix(loss=f"{loss:.4g}", **_last(run.val_losses))
            if stop:
                break
    result = run.result()
    logger.info(
        "%s: %d epochs on %d images (%d held out), best epoch %d, final loss %.4g",
        desc, len(result.losses), result.n_images, result.n_val_images, result.best_epoch,
        result.losses[-1],
    )  # fmt: skip
    return result


def _last(val_losses: list[float]) -> dict[str, str]:
    """The progress-bar entry of the latest held-out loss, if any."""
    return {"val": f"{val_losses[-1]:.4g}"} if val_losses else {}
