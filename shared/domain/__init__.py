"""The domain: models, states and their move tables, reasons, and the repository interfaces.

Pure: nothing here does I/O or imports a vendor library; the adapters (:mod:`shared.adapters`)
store these models and honour these tables.
"""
