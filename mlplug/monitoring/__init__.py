"""Monitoring: whylogs profiles of the traffic a model answers, drift against the profile
of its training data, and the decision to refit.

- :mod:`.features` turns model inputs and outputs into the columns that are profiled;
- :mod:`.whylogs_compat` is the only module that imports whylogs;
- :mod:`.bounds` counts and clips infinite and extreme values before they are profiled;
- :mod:`.sampling` decides which requests a busy server profiles;
- :mod:`.profiles` writes and reads profiles in the store (and skips damaged ones);
- :mod:`.drift` scores drift per column and decides.
"""
