"""The dict-like storages a ``StockRoom`` exposes: ``data``, ``model``, ``tag``."""
