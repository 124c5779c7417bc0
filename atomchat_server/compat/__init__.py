"""The original AtomChat REST API (/api/...), in a package of its own so
that the core services know nothing of it: ``handlers`` (its HTTP surface),
``service`` (its behaviour, over the core room and account services) and
``storage`` (its queries). It sits beside the core layers, using them and
never used by them (the import contracts in pyproject.toml)."""
