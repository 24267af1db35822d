"""Retrieval: track embeddings, a vector index, similar-track search and playlists.

Nothing heavy is imported here: import the submodules you need (``retrieval.store`` for the
vector stores; see ``docs/vector-stores.md``).
"""
