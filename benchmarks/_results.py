"""What every benchmark script shares: a line naming the machine, and recording a block of text
at the end of its own section of benchmarks/RESULTS.md (other sections are left as they are)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "RESULTS.md"


def machine(device: str | None = None) -> str:
    """The GPU's name, or the CPU model, cores, torch threads and load average."""
    if (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda"):
        return torch.cuda.get_device_name(0)
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    return f"CPU {cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch thread(s){load}"


def record(section: str, text: str, path: Path = RESULTS) -> None:
    """Insert `text` at the end of `section` ("## Audio"), creating the section at the end of the file."""
    lines = (path.read_text() if path.exists() else "# Benchmark results\n").rstrip("\n").split("\n")
    if section not in lines:
        lines += ["", section]
    start = lines.index(section)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    while end > start + 1 and lines[end - 1] == "":  # insert before the section's trailing blank lines
        end -= 1
    lines[end:end] = ["", *text.strip("\n").split("\n")]
    path.write_text("\n".join(lines) + "\n")
