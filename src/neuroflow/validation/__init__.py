"""Data validation: Great Expectations 1.x suites kept in git as reviewable JSON.

- ``neuroflow.validation.suite``: load and save a suite's JSON (atomic writes).
- ``neuroflow.validation.profile``: propose a suite from the train split for a person to review.
- ``neuroflow.validation.runner``: run a suite on every split, summarise failures, build Data Docs.

Nothing is imported here: Great Expectations takes seconds to import, so each module imports it
only when a function that needs it is called.
"""
