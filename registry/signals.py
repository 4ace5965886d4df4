"""What the registry tells the layers above it.

`version_registered` is sent (after the registering transaction commits its rows, inside
it) with `version` and `by`, when a trained artifact has been stored as a new version and
the caller wants its probes rerun; the probes app queues that rerun.
"""

from django.dispatch import Signal

version_registered = Signal()
