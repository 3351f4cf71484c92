"""tnq_core: what every layer of tnq shares and nothing of tnq depends on below it: errors, progress bars,
the command-line error boundary, file hashing and ragged-array indices (docs/architecture.md)."""
