"""``stock ui``: a read-only web app of a stock repository (SPEC section 11).

:mod:`stockroom.ui.data` computes what the pages show, :mod:`.server` serves
it on loopback, :mod:`.export` writes it as a static site. Not imported by
``import stockroom``.
"""
