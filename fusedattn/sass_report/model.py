"""The static performance model of the SASS report (docs/performance_model.md): how long a
launch takes on an H200 from the bytes it must move, the bytes it keeps in flight, the
instructions it issues and how its blocks fill the GPU. No GPU is needed; every number it
prints is an estimate and says so.

Per launch:
- occupancy: resident blocks per SM from threads, registers (allocated per warp in units of
  256) and shared memory (plus 1 KB the hardware reserves per block);
- the launch runs in waves of at most `slots` = blocks per SM x SMs blocks; a wave of `active`
  blocks moves its bytes at min(copy bandwidth, active x bytes in flight per block / latency
  (Little's law), SMs used x the bandwidth one SM can pull), and issues its instructions at 4
  warp instructions per clock per SM used; the small kernels also wait for `rounds` round trips
  to memory one after another; the slowest of the three is the wave's time;
- plus the round trips it waits for once, which no block's streaming hides (`serial_rounds`),
  and a fixed cost per launch (launch latency, ramp-up and drain).
A kernel's estimate is the share of the copy bandwidth it reaches: its bytes / copy bandwidth
over its modelled time. An op's estimate at a shape is the floor's bytes / copy bandwidth over
the sum of its launches' times, so extra bytes (scratch, re-reads) count against it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Gpu:
    name: str
    sms: int
    clock_hz: float
    copy_bytes_per_s: float       # device-to-device copy, read + write
    latency_s: float              # loaded DRAM latency, for Little's law
    sm_bytes_per_s: float         # what one SM's load/store path moves at most
    launch_s: float               # fixed cost per launch
    max_threads_per_sm: int = 2048
    max_blocks_per_sm: int = 32
    registers_per_sm: int = 65536
    shared_bytes_per_sm: int = 233472     # 228 KB
    shared_reserved_per_block: int = 1024
    issue_per_clock: int = 4              # warp instructions per SM per clock

    def needed_in_flight_per_sm(self) -> float:
        """Bytes each SM must keep in flight for the copy bandwidth (Little's law)."""
        return self.copy_bytes_per_s * self.latency_s / self.sms


# The H200 (SXM) as measured on this workplace's machines (device-to-device copy about 4.3 TB/s
# counting read + write, 132 SMs, SM clock 1980 MHz under load); latency, the per-SM limit and
# the launch cost are assumptions (docs/performance_model.md), not readings.
H200 = Gpu(name="H200", sms=132, clock_hz=1.98e9, copy_bytes_per_s=4.3e12, latency_s=1.0e-6,
           sm_bytes_per_s=64 * 1.98e9, launch_s=1.5e-6)


@dataclass
class LaunchCost:
    """One launch as the model sees it."""
    kernel: str
    ctas: int
    threads: int
    registers: int
    shared_bytes: int               # dynamic + static
    bytes: float                    # DRAM bytes the launch moves (read + write)
    in_flight_per_block: float      # bytes a block keeps in flight in its main loop
    instructions_per_block: float   # warp instructions a block issues (all its warps)
    rounds: int = 0                 # round trips to memory a block waits for in sequence
    # ... and those the launch waits for once, which no block's streaming hides: a first
    # wave's wait for inputs before its first feature load, a last block's finish
    serial_rounds: int = 0


def blocks_per_sm(gpu: Gpu, threads: int, registers: int, shared_bytes: int) -> int:
    warps = math.ceil(threads / 32)
    by_threads = gpu.max_threads_per_sm // max(threads, 1)
    regs_per_warp = math.ceil(max(registers, 1) * 32 / 256) * 256
    by_registers = gpu.registers_per_sm // (regs_per_warp * warps)
    by_shared = gpu.shared_bytes_per_sm // (shared_bytes + gpu.shared_reserved_per_block)
    return max(0, min(gpu.max_blocks_per_sm, by_threads, by_registers, by_shared))


def launch_time(gpu: Gpu, launch: LaunchCost) -> float:
    """Modelled seconds of one launch (0 for a launch that is skipped)."""
    if launch.ctas <= 0:
        return 0.0
    per_sm = blocks_per_sm(gpu, launch.threads, launch.registers, launch.shared_bytes)
    if per_sm == 0:
        raise ValueError(f"{launch.kernel}: no block fits on an SM")
    slots = per_sm * gpu.sms
    bytes_per_block = launch.bytes / launch.ctas
    # (a block cannot keep more bytes in flight than it moves: a plan's figure is the capacity of
    # its loads, which a block of a few pixels, or a small sample, never fills)
    in_flight = min(launch.in_flight_per_block, bytes_per_block)
    t, remaining = gpu.launch_s, launch.ctas
    while remaining > 0:
        active = min(remaining, slots)
        sms_used = min(gpu.sms, active)  # the scheduler spreads blocks over the SMs first
        bandwidth = min(gpu.copy_bytes_per_s,
                        active * in_flight / gpu.latency_s,
                        sms_used * gpu.sm_bytes_per_s)
        t_memory = active * bytes_per_block / bandwidth if bandwidth > 0 else 0.0
        t_issue = (active * launch.instructions_per_block /
                   (sms_used * gpu.issue_per_clock * gpu.clock_hz))
        t += max(t_memory, t_issue, launch.rounds * gpu.latency_s)
        remaining -= active
    return t + launch.serial_rounds * gpu.latency_s


def pct_of_copy(gpu: Gpu, useful_bytes: float, seconds: float) -> float:
    """The share of the copy bandwidth `useful_bytes` in `seconds` stands for, in percent."""
    return 100.0 * useful_bytes / gpu.copy_bytes_per_s / seconds if seconds > 0 else 0.0
