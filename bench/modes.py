"""What one run measures and for how long: the full run and the smoke run (frozen; vary with `replace`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HashParams:
    """Argon2id parameters of the auth service (and of the raw verify baseline)."""

    time_cost: int
    memory_kib: int
    parallelism: int

    def env(self) -> dict[str, str]:
        return {
            "PASSWORD_TIME_COST": str(self.time_cost),
            "PASSWORD_MEMORY_KIB": str(self.memory_kib),
            "PASSWORD_PARALLELISM": str(self.parallelism),
        }


# the production defaults of AuthSettings; smoke runs use cheap ones (like the test suite)
FULL_HASH = HashParams(time_cost=2, memory_kib=19456, parallelism=1)
SMOKE_HASH = HashParams(time_cost=1, memory_kib=8192, parallelism=1)


@dataclass(frozen=True)
class Mode:
    """The settings of one run. Shared and frozen: a variant is `dataclasses.replace(FULL, ...)`."""

    name: str
    levels: tuple[int, ...]
    warmup: float
    duration: float
    rounds: int  # reference/service pairs per point, in ABBA order (R S S R ...)
    users: int
    rows_per_user: int
    pending_per_user: int
    history_rows: tuple[int, int]
    history_levels: tuple[int, ...]
    scaling_levels: tuple[int, ...]
    scaling_workloads: tuple[str, ...]
    hash: HashParams

    @property
    def target_level(self) -> int:
        """The concurrency the targets are read at: 16 when measured, else the highest."""
        return 16 if 16 in self.levels else self.levels[-1]


FULL = Mode(
    name="full",
    levels=(1, 16, 64),
    warmup=1.0,
    duration=5.0,
    rounds=2,
    users=8,
    rows_per_user=1000,
    pending_per_user=16000,  # update cancels one per call, on the reference and the service
    history_rows=(1_000, 1_000_000),
    history_levels=(1, 16),
    scaling_levels=(16, 64),
    scaling_workloads=("echo", "create", "get", "list", "login"),
    hash=FULL_HASH,
)
SMOKE = Mode(
    name="smoke",
    levels=(4,),
    warmup=0.2,
    duration=0.6,
    rounds=1,
    users=2,
    rows_per_user=100,
    pending_per_user=3000,
    history_rows=(100, 2_000),
    history_levels=(1,),
    scaling_levels=(4,),
    scaling_workloads=("echo", "create"),
    hash=SMOKE_HASH,
)
