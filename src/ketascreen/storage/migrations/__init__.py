"""Alembic migrations of ketascreen's database (applied on start and by `ketascreen db upgrade`)."""
