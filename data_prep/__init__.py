"""mmgt_prep: dataset preprocessing into clip stores (toy speakers, real videos, importers).

Imports :mod:`mmgt.schema`, :mod:`mmgt.io` and friends; :mod:`mmgt` never imports this package.
"""
