"""Configuration, the bottom layer: the recipe (versions, paths, ports, URLs, package names per distro) read
once into typed settings, and what follows from them alone.

typed.py     plain data <-> dataclasses (recipes, fact dumps)     recipe.py    the recipe's TOML, typed
settings.py  recipe + config file + environment + flags           agentenv.py  the agent's environment
shellenv.py  `simdoctor env`: that environment for a shell or as JSON
"""
