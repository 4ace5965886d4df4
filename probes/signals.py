"""What the probes app tells the layers above it.

`rerun_finished` is sent with `rerun_id` once every run of a rerun has finished (after the
transaction that finished the last one commits); remediation records its follow-up
evaluations then.
"""

from django.dispatch import Signal

rerun_finished = Signal()
