"""Model fetch: hub downloads, the embedded GGUF default and local folders, with provenance."""
