"""Evidence that lasts: comparisons and votes kept in a database, and the ratings computed from them.

Plain Python (SQLAlchemy, Alembic, numpy): no Gradio, no torch. ``types`` holds the vocabulary the store
and the ratings share; ``store`` keeps comparisons and votes; ``ratings`` fits the leaderboard.
"""
