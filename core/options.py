"""Checking what a user asks for, the same way in every domain: unknown options are errors,
numbers are finite and in range, classes are parsed one way, guidance is checked once.

Every check raises ``UserError`` with the option's name, the value given and what is allowed.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch

from .errors import UserError

UNCONDITIONAL = -1  # the class label a network reads as "no class" (classifier-free guidance's null)
_NONE_WORDS = ("none", "null", "uncond", "unconditional", "")


def check_known(options: Mapping[str, Any], allowed: Iterable[str], where: str) -> None:
    """Refuse options nobody reads: ``unknown video sampling option 'fps'; expected one of ...``."""
    allowed = list(allowed)
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        s = "s" if len(unknown) > 1 else ""
        raise UserError(f"unknown {where} option{s} {', '.join(map(repr, unknown))}; expected one of {', '.join(allowed)}")


def number(value: Any, name: str, *, low: float | None = None, high: float | None = None,
           low_open: bool = False) -> float:
    """A finite float in [low, high] (or (low, high] with low_open); None is not a number."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise UserError(f"{name}={value!r} is not a number") from None
    if not math.isfinite(x):
        raise UserError(f"{name}={value!r} must be a finite number")
    if low is not None and (x <= low if low_open else x < low):
        raise UserError(f"{name}={value!r} must be {'>' if low_open else '>='} {low:g}")
    if high is not None and x > high:
        raise UserError(f"{name}={value!r} must be <= {high:g}")
    return x


def whole(value: Any, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """An integer in [low, high]; 2.0 is 2, 2.5 and 'two' are errors."""
    try:
        x = float(value)
        ok = math.isfinite(x) and x == int(x) and not isinstance(value, bool)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise UserError(f"{name}={value!r} is not a whole number")
    k = int(x)
    if low is not None and k < low:
        raise UserError(f"{name}={value!r} must be >= {low}")
    if high is not None and k > high:
        raise UserError(f"{name}={value!r} must be <= {high}")
    return k


def _class_list(names: Sequence[str] | int) -> str:
    if isinstance(names, int):
        return f"0..{names - 1}"
    return ", ".join(f"{i}={c}" for i, c in enumerate(names))


def parse_class(value: Any, names: Sequence[str] | int) -> int:
    """One class: an index, a class name, or -1 / 'none' for unconditional. `names` is the
    model's class names, or just their number."""
    k = len(names) if not isinstance(names, int) else names
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
        return UNCONDITIONAL
    if isinstance(value, str) and not isinstance(names, int) and value.strip() in names:
        return list(names).index(value.strip())
    try:
        i = whole(value, "class")
    except UserError:
        raise UserError(f"class={value!r} is not a class of this model; its {k} classes are "
                        f"{_class_list(names)} (-1: unconditional)") from None
    if not UNCONDITIONAL <= i < k:
        raise UserError(f"class={i} is outside this model's {k} classes ({_class_list(names)}; -1: unconditional)")
    return i


def parse_classes(value: Any, names: Sequence[str] | int, n: int) -> list[int] | None:
    """Labels for `n` samples from ``class=``: None when not given (the domain decides what that
    means); one class for all; or a list / comma-separated string with one class per sample."""
    if value is None:
        return None
    if isinstance(value, str) and "," in value:
        value = [v for v in value.split(",") if v.strip()]
    if isinstance(value, (list, tuple)) or (hasattr(value, "__len__") and not isinstance(value, str)):
        labels = [parse_class(v, names) for v in value]
        if len(labels) == 1:
            return labels * n
        if len(labels) != n:
            raise UserError(f"class= gives {len(labels)} classes for n={n} samples; give one class, or n of them")
        return labels
    return [parse_class(value, names)] * n


def check_guidance(guidance: Any, rescale: Any = 0.0, interval: Any = None) -> None:
    """guidance >= 0 (1 = off, 0 = unconditional), rescale in [0, 1], interval [lo, hi] with 0 <= lo <= hi."""
    number(guidance, "guidance", low=0.0)
    number(rescale, "guidance_rescale", low=0.0, high=1.0)
    if interval is not None:
        try:
            lo, hi = (float(v) for v in interval)
        except (TypeError, ValueError):
            raise UserError(f"guidance_interval={interval!r} must be [sigma_lo, sigma_hi]") from None
        if not (0 <= lo <= hi) or math.isnan(hi):
            raise UserError(f"guidance_interval={interval!r} must be [sigma_lo, sigma_hi] with 0 <= sigma_lo <= sigma_hi")


@torch.no_grad()
def check_something_to_guide(denoiser: Callable, x: torch.Tensor, sigma: torch.Tensor, cond: dict | None,
                             guidance: float) -> None:
    """Refuse guidance that cannot change anything: the conditional and the unconditional
    predictions are identical (an unconditional model, or a conditional one asked for no class).
    Costs one guided network call; works for any domain, since guidance works only through
    ``cond["drop"]``."""
    if cond is None:
        raise UserError(f"guidance={guidance:g} needs a condition to guide towards, and this model takes none; "
                        "use guidance=1 (off)")
    B = x.shape[0]
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).reshape(-1).expand(B)
    drop = {k: v for k, v in cond.items() if k != "drop"}
    both = {k: torch.cat([v, v]) for k, v in drop.items()}
    both["drop"] = torch.cat([torch.zeros(B, dtype=torch.bool, device=x.device), torch.ones(B, dtype=torch.bool, device=x.device)])
    d_c, d_u = denoiser(torch.cat([x, x]), torch.cat([sigma, sigma]), both).chunk(2)
    if torch.equal(d_c, d_u):
        raise UserError(f"guidance={guidance:g} changes nothing: this model's guided and unguided predictions are "
                        "identical (an unconditional model, or no condition asked for, e.g. class=-1); give a "
                        "condition (class=..., target=...) or use guidance=1 (off)")
