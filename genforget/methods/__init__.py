"""Unlearning methods. Importing this package registers every method in :data:`METHODS`."""

from genforget.methods import esd, grad_ascent, grad_diff, newton, npo, salun, simnpo  # noqa: F401
from genforget.methods.base import Method

__all__ = ["Method"]
