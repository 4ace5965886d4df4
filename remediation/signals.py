"""What the remediation app tells the layers above it.

`evaluation_recorded` is sent with `evaluation` when an automatic evaluation has been
stored (inside its transaction); introspection queues its moved-problem check on commit
and answers True, and the evaluation waits for that check before it counts as held
(remediation.followup.after_moved_problem_check settles it).
"""

from django.dispatch import Signal

evaluation_recorded = Signal()
