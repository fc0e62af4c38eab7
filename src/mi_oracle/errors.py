"""Errors the workflow raises for bad input: each names the file, the key and what was expected."""


class MiOracleError(Exception):
    """Base class of every error mi-oracle raises on purpose."""


class ConfigError(MiOracleError):
    """The workflow configuration does not match its schema."""


def raise_problems(problems: list[str]) -> None:
    """One ConfigError listing every problem found (a user fixes them all in one pass), if any."""
    if len(problems) == 1:
        raise ConfigError(problems[0])
    if problems:
        raise ConfigError(f"{len(problems)} problems in the configuration:\n  " + "\n  ".join(problems))


class FetchError(MiOracleError):
    """A model could not be fetched; the message says what to do."""


class TransientError(MiOracleError):
    """A failure that may not happen again: the network, a busy server, a corrupt download."""


class TransientFetchError(FetchError, TransientError):
    """The hub could not be reached or answered with a server error; trying again may succeed."""


class HashMismatchError(TransientFetchError):
    """A downloaded file does not have the hash its source announced (the cached copy is removed)."""


class ModelFolderError(MiOracleError):
    """A Hugging Face model folder lacks a file a causal LM needs, or has a bad one."""


class PathEscapeError(MiOracleError):
    """A path from a configuration points outside the roots it may use."""


class DictionaryError(MiOracleError):
    """A curation YAML, dictionary set or dictionary file is malformed or does not fit the model."""


class ReferenceDataError(MiOracleError):
    """A reference cannot be generated from its inputs, or differs from a committed one."""


class CrossValidationError(MiOracleError):
    """A cross-validation bar failed (the report says which)."""


class NumericsError(MiOracleError):
    """Portable numerics did not take effect, or a step failed in its portable-numerics process."""


class DataFileError(MiOracleError):
    """A data file (activations, features, tokens) is unreadable, corrupt, or holds non-finite values."""


class PeerError(MiOracleError):
    """A peer implementation failed in its own environment (its output is in the rule's log)."""
