"""Declarative mappings: other systems' records onto the canonical application, and back.

See :mod:`gateway.mappings.loader` for the file format and :mod:`gateway.mappings.engine` for
what a loaded :class:`Mapping` does; ``docs/integration/mappings.md`` for the guide.
"""

from gateway.mappings.engine import Mapping, MappingError, MappingResult
from gateway.mappings.loader import check_targets, load_mapping

__all__ = ["Mapping", "MappingError", "MappingResult", "check_targets", "load_mapping"]
