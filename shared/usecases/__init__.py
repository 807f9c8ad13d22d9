"""Use cases: business flows as plain functions taking their ports (the repositories, the queue…)."""
