"""Cross-validation: independent implementations and candidate results against the references."""
