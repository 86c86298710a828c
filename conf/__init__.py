"""The Hydra configs, installed as the package ``mmgt.conf`` (pyproject maps this folder to it).

No code: the YAML files are package data, found through :data:`mmgt.config.CONFIG_DIR`.
"""
