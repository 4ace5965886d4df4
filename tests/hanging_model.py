"""A model that hangs on some inputs, for the time-limit tests.

A deployment trusts it by name (SKOPS_EXTRA_TRUSTED_TYPES=tests.hanging_model.HangingPipeline)
the way it would trust its own estimator classes. Its predict_proba hangs when a row's
`x2` is above `hang_above`: a counterfactual probe that sets x2 to a large value hangs,
every other probe runs normally. With `block_alarm`, the hang also ignores SIGALRM (a hang
inside native code that never returns to Python), so that only the worker's guard can end it.
"""

import signal
import time

from sklearn.pipeline import Pipeline


class HangingPipeline(Pipeline):
    def __init__(self, steps, *, hang_above=1e6, block_alarm=False, memory=None, verbose=False):
        super().__init__(steps, memory=memory, verbose=verbose)
        self.hang_above = hang_above
        self.block_alarm = block_alarm

    def predict_proba(self, X, **params):
        if "x2" in X and (X["x2"] > self.hang_above).any():
            if self.block_alarm:
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
        return super().predict_proba(X, **params)


def hanging_model(frame, *, block_alarm=False):
    """The test pipeline of tests.factories.fitted_model, as a HangingPipeline."""
    from .factories import fitted_model

    fitted = fitted_model(frame)
    model = HangingPipeline(fitted.steps, block_alarm=block_alarm)
    return model
