"""Encoding captured activations with SAEs, per-layer transcoders and cross-layer transcoders."""
