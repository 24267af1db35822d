"""Latent targets: vector spaces a model can learn to predict from audio (issue 14).

* :mod:`latent.targets` — the target table folder (``targets.npz`` + ``targets.json`` [+ ``rare.csv``]),
  the one format every consumer reads (training's latent task, image models, retrieval's cold start);
* :mod:`latent.doc2vec` — one vector per track from its clean tags (shufl);
* :mod:`latent.track2vec` — one vector per track from co-listening (Deej-A.I.): word2vec with tracks
  as words and each user's listening (or a playlist) as a sentence;
* :mod:`latent.listens` — streaming parsers of the Taste Profile files and playlists;
* :mod:`latent.cli` — ``musetag latent doc2vec|track2vec|info``.

Formats and the cold-start protocol: ``docs/latent.md``.
"""
