"""Monitoring: whylogs profiles of the traffic a model answers, drift against the profile
of its training data, and the decision to refit.

- :mod:`.features` turns model inputs and outputs into the columns that are profiled;
- :mod:`.whylogs_compat` is the only module that imports whylogs;
- :mod:`.profiles` writes and reads profiles in the store;
- :mod:`.drift` scores drift per column and decides.
"""
