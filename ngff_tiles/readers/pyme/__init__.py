"""PYME (python-microscopy) cluster series: PZF frames, ``.pcs`` series, ``pyme-cluster://`` URLs.

Implemented from the format descriptions in ``reference/pyme.md`` (PYME is GPL-3.0; none of its
code is used, and PYME is never imported).
"""
