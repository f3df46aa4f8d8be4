"""PairedDataModule: paired data over one or many concepts, with step-exact epochs."""
from __future__ import annotations

from pathlib import Path

import lightning as L
from torch.utils.data import DataLoader

from e2gan.data.dataset import PairedDataset, StepBatchSampler, manifest_pairs


class PairedDataModule(L.LightningDataModule):
    """Train on ``concepts`` from ``root``; validate on a fixed slice of the val split.

    One "epoch" is ``steps_per_epoch`` batches; checkpoints fall on epoch boundaries, which is
    what makes resuming exact.
    """

    def __init__(self, root: str | Path, concepts: list[str], concept_index: dict[str, int], *,
                 batch_size: int, steps_per_epoch: int, seed: int = 0, num_workers: int = 0,
                 val_limit: int = 64, train_indices: list[int] | None = None):
        super().__init__()
        self.root, self.concepts, self.concept_index = Path(root), list(concepts), dict(concept_index)
        self.batch_size, self.steps_per_epoch, self.seed = batch_size, steps_per_epoch, seed
        self.num_workers, self.val_limit, self.train_indices = num_workers, val_limit, train_indices
        self.train_set: PairedDataset | None = None
        self.val_set: PairedDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            from e2gan.data.manifest import verify_manifest

            # One check of the whole manifest (every file against its sha256) serves both splits.
            records = verify_manifest(self.root)
            self.train_set = PairedDataset(self.root, self.concepts, "train", self.concept_index,
                                           indices=self.train_indices, records=records)
            n_val = len(manifest_pairs(self.root, self.concepts, "val", records=records))
            # An even spread over the val split, so every concept shows up in the grid.
            step = max(1, n_val // self.val_limit)
            self.val_set = PairedDataset(self.root, self.concepts, "val", self.concept_index,
                                         indices=list(range(0, n_val, step))[: self.val_limit], records=records)

    def train_dataloader(self) -> DataLoader:
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        sampler = StepBatchSampler(len(self.train_set), self.batch_size, self.steps_per_epoch,
                                   seed=self.seed, rank=rank, world_size=world)
        return DataLoader(self.train_set, batch_sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False,
                          num_workers=self.num_workers)
