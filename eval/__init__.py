"""mmgt_eval: benchmark metrics for any folder of videos.

Imports :mod:`mmgt.schema` / :mod:`mmgt.io` at most; never Lightning, Hydra or training code.
"""
