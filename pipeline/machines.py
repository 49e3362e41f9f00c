"""The training step's Vertex AI machines: a compile-time choice, checked before compiling."""

from __future__ import annotations

import dataclasses

from taxifare.errors import UsageError


@dataclasses.dataclass(frozen=True)
class TrainingMachines:
    """Where the training step runs on Vertex AI (a custom job's worker pool)."""

    machine_type: str = "n1-standard-4"
    accelerator_type: str = ""  # e.g. NVIDIA_TESLA_T4
    accelerator_count: int = 0
    replica_count: int = 1  # > 1: multi-worker training
    boot_disk_size_gb: int = 100

    def __post_init__(self) -> None:
        if self.replica_count < 1:
            raise UsageError(f"replica count must be at least 1, got {self.replica_count}")
        if bool(self.accelerator_type) != (self.accelerator_count > 0):
            raise UsageError("give an accelerator type and a positive accelerator count together")
        if self.boot_disk_size_gb < 10:
            raise UsageError(f"boot disk must be at least 10 GB, got {self.boot_disk_size_gb}")
