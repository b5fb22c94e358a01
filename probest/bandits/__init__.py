"""probest.bandits — planned family; no estimators yet (see the project's issues)."""

__all__: list[str] = []
