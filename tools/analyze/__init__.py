"""Analyses of trained runs (``marlshare analyze RUN_DIR``, :func:`analyze`) and the reproductions of
the papers' claims (``python -m tools.analyze.results``, ``make results``). See docs/analysis.md."""

from tools.analyze.run_analysis import analyze, main

__all__ = ["analyze", "main"]
