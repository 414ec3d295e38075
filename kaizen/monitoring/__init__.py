"""Monitoring and the feedback loop: what the served model did and how it turned out.

``predictions``: the server's prediction log, written in batches to the object store as
Parquet partitioned by date and model version. ``labels``: true labels stored durably and
joined to the logged predictions by prediction id. ``reference``: the training reference
stored with each model version. ``drift``, ``live``, ``monitor``: ``kaizen monitor``'s checks
of the champion (PSI and KS, live metrics, the gauges). ``trigger``: retraining on a breach,
once per breach and data fingerprint, rate-limited. See docs/monitoring.md.

This layer sits between ``registry`` and ``serving``: the server writes through it, and the
monitor reads what it wrote.
"""
