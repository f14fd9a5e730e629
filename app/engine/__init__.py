"""The transfer SDK (a Python port of the Rust crate rusty-cat). Import from ``app.engine.api``."""
