"""The bad-input corpus: built at test time by :mod:`bad_inputs.generate`, never stored as binaries."""
