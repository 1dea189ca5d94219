"""The ``salesforce`` adapter: Salesforce Outbound Messaging (``notifications``) in, one logged
decision per notification, ``notificationsResponse`` with ``Ack`` out.

See docs/integration/salesforce.md.
"""
