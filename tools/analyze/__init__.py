"""The reproductions of the papers' claims (``python -m tools.analyze.results``, ``make results``):
:mod:`.results` runs a results grid, :mod:`.report` turns it into the tables and figures of
docs/results.md, :mod:`.grid` holds what both need. The analyses themselves are library code,
:mod:`marlshare.components.analysis` (``marlshare analyze``, docs/analysis.md)."""
