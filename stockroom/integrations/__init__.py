"""Training-framework integrations (SPEC 10): shared code; the user-facing modules are
:mod:`stockroom.lightning`, :mod:`stockroom.keras` and :mod:`stockroom.transformers`."""
