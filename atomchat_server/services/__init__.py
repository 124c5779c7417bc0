"""Service functions: each decides one action (using the pure rules in
``events/`` and ``auth/policy``), persists it through ``storage/`` and
returns plain data. They know nothing of HTTP, so every API surface shares them."""
