"""The collections app's pages and endpoints, one module per area (tests/views mirrors them)."""
