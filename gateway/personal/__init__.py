"""Personal data in the decision log: classification, encryption, masking, erasure.

- :mod:`gateway.personal.crypto`: master keys, wrapped data keys, value envelopes;
- :mod:`gateway.personal.store`: per-subject data keys in ``subject_keys``;
- :mod:`gateway.personal.documents`: sealing a document's personal values, and what a
  reader may see of a stored one;
- :mod:`gateway.personal.service`: :class:`PersonalData`, built from ``personal_data``
  settings, with erasure, retention purge and master-key rotation;
- :mod:`gateway.personal.views`: the one helper every read route calls;
- :mod:`gateway.personal.cli`: ``loangate subjects …``.
"""

from gateway.personal.service import Erasure, PersonalData

__all__ = ["Erasure", "PersonalData"]
