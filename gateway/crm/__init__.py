"""CRM write-back: a decision on a CRM record is written back to that record.

When a decision comes from one of the configured CRM adapters, a row describing the
write-back enters the ``crm_outbox`` table in the decision's own transaction; delivery
workers (a thread in each server process, or ``loangate crm deliver``) PATCH the CRM
record through a named ``type: rest`` connection, retrying with backoff until it lands,
fails for good (a 4xx other than 408/429) or is older than ``max_age_hours``.

Modules: :mod:`.schema` (the ``crm_writeback:`` config schema), :mod:`.writeback`
(settings and the outbox companion), :mod:`.outbox` (claims and results in the
database), :mod:`.delivery` (the worker and its thread), :mod:`.cli`.
"""
