"""bizra_nb: the SRE notebook platform's library: score, store, sources, CMDB, RCA, runner, reports, audit, CLI."""
from __future__ import annotations

__version__ = "0.1.0"

from bizra_nb.score import WEIGHTS, ScoreKeeper, ahsan_score, tier  # noqa: E402

__all__ = ["__version__", "WEIGHTS", "ScoreKeeper", "ahsan_score", "tier"]
