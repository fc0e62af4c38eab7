"""Dictionary sets (SAEs, per-layer and cross-layer transcoders): resolution, inspection, synthesis."""
