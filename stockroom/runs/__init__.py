"""Training runs (SPEC 9): every checkpoint a stock commit, per-step metrics, resume anywhere.

``run = stock.run()`` gives a :class:`stockroom.runs.run.Run`; see
docs/runs.md. Submodules are imported on use: ``records`` is light (git
revision parsing calls it), ``run``, ``metrics`` and ``sampler`` (the
data position, :class:`stockroom.runs.sampler.StockSampler`) need numpy,
nothing imports torch.
"""
