"""Paths and helpers shared by every rule file."""

ENV = "../../envs/mi-oracle.yaml"
MODEL = config["model"]["name"]


def model_dir():
    """The fetched model folder every stage reads."""
    return f"resources/models/{MODEL}"
