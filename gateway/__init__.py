"""loangate: a governed decision gateway for legacy loan systems."""

from gateway.app import create_app
from gateway.hookspecs import hookimpl

__all__ = ["create_app", "hookimpl"]
__version__ = "0.1.0"
