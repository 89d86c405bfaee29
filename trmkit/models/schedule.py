"""Values by training progress p = step / total_steps (docs/engine.md, "Training progress and
schedules").

A config's ``schedule`` maps a field to pieces ``[[fraction, value], ...]``: piecewise
constant, fractions rising strictly from 0.0 (checked at recipe load by
`trmkit.config.check_schedule`, the fields by `CoreConfig.validate`). At progress p a field
takes the value of the last piece starting at or before p; p = 1 (evaluation, solving) gives
the last piece. `config_at` is what `ACTModel.set_progress` runs on; `schedule_pieces` is what
the preflight and FLOP counts weigh (peak memory, step-weighted time).
"""

from __future__ import annotations

from typing import Any

import attrs


def config_at(cfg: Any, p: float) -> Any:
    """``cfg`` with its scheduled fields at progress ``p`` and no schedule (``cfg`` itself when
    it schedules nothing)."""
    if not cfg.schedule:
        return cfg
    values = {
        key: next((value for start, value in reversed(pieces) if start <= p), pieces[0][1])
        for key, pieces in cfg.schedule.items()
    }
    return attrs.evolve(cfg, schedule={}, **values)


def schedule_pieces(cfg: Any) -> list[tuple[float, float, Any]]:
    """``(start, share of the training steps, config)`` for each stretch of constant values;
    one piece ``(0.0, 1.0, cfg)`` for a config that schedules nothing or has no schedule field
    (a third-party architecture)."""
    from trmkit.models.core import CoreConfig

    if not isinstance(cfg, CoreConfig) or not cfg.schedule:
        return [(0.0, 1.0, cfg)]
    starts = sorted({float(start) for pieces in cfg.schedule.values() for start, _ in pieces})
    ends = [*starts[1:], 1.0]
    return [(a, b - a, config_at(cfg, a)) for a, b in zip(starts, ends, strict=True)]
