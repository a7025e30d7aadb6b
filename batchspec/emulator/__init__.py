"""The local Azure Batch service: a REST-faithful emulator of the Batch data plane.

It is a development service, not a sandbox: task commands run as the invoking user on this host.
"""

# Well-known development credentials, like Azurite's devstoreaccount1: public by design, and
# accepted only by the emulator.
DEV_ACCOUNT_NAME = "devbatch"
DEV_ACCOUNT_KEY = "kq0/QmMXrnxiegwC25nXLk6A1pgz9gpinqPoCFy4ir1emlPkXqYcKn0sN4SQ/CCrp+imrrFvWGI+bRx/+PkUNw=="  # noqa: E501
