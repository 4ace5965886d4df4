"""What the remediation app tells the layers above it.

`evaluation_recorded` is sent with `evaluation` when an automatic evaluation has been
stored (inside its transaction); introspection queues its moved-problem check on commit.
"""

from django.dispatch import Signal

evaluation_recorded = Signal()
