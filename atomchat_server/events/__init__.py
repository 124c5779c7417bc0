"""Pure rules with no I/O: identifiers, event building, authorization."""
