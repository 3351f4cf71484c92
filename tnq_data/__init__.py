"""tnq_data: fetch, curate, label and version datasets for charge/spin-aware potentials."""

__version__ = "0.1.0"
