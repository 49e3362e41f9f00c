"""The one error type: what is wrong and how to fix it, for a person to read.

Everything a user can cause or fix (a flag, a file, a cloud setting, a registry in a bad
state) raises a TaxifareError; the CLI prints it as one line and exits with `exit_code`.
Anything else is a bug and keeps its traceback. Nothing here imports the rest of the project.
"""

from __future__ import annotations


class TaxifareError(Exception):
    """A problem the user can fix: `message` says what is wrong, `fix` (optional) what to do."""

    exit_code = 1

    def __init__(self, message: str, fix: str = ""):
        super().__init__(message)
        self.message, self.fix = message, fix

    def __str__(self) -> str:
        return f"{self.message}; {self.fix}" if self.fix else self.message


class UsageError(TaxifareError):
    """A command-line mistake: a flag, a parameter, a setting that cannot work (exit status 2)."""

    exit_code = 2


class DataError(TaxifareError):
    """Input data that cannot be used: a file, its rows, a prediction instance; names which."""


class InstanceError(DataError):
    """A prediction instance that cannot be used; names its position and field."""

    def __init__(self, index: int, field: str | None, problem: str, where: str = "instance"):
        self.index, self.field, self.problem = index, field, problem
        target = f"{where} {index}" + (f", field {field!r}" if field else "")
        super().__init__(f"{target}: {problem}")


class Diverged(TaxifareError):
    """Training went to NaN or infinity: nothing from the run is a model (a tuning trial so is failed)."""


class RegistryError(TaxifareError):
    """A model registry that lacks what was asked for, or is damaged; names the file or version."""


class ChampionMoved(RegistryError):
    """Another run (or a person) moved the champion after this run's evaluate: nothing was promoted."""


class NotServable(TaxifareError):
    """A model that does not answer through the path that would serve it; says which and how."""


class CloudError(TaxifareError):
    """Google Cloud or a Kubeflow host refused, could not be reached, or is in a state we cannot go on from."""


class RecordError(TaxifareError):
    """A local run's record that cannot be read or trusted (damaged, hostile, from another version);
    names the file and the fix."""
