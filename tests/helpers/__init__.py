"""Shared helpers for integration tests."""

from tests.helpers.procs import (
    EXAMPLES_DIR,
    REPO_ROOT,
    ExampleServices,
    Proc,
    ProcessFailed,
    clean_env,
    free_port,
    start_examples,
    wait_for_port,
)

__all__ = [
    "EXAMPLES_DIR",
    "REPO_ROOT",
    "ExampleServices",
    "Proc",
    "ProcessFailed",
    "clean_env",
    "free_port",
    "start_examples",
    "wait_for_port",
]
