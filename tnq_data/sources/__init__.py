"""Raw dataset sources: catalogue of published releases, checksummed resumable downloads, safe archive extraction."""
