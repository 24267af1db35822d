"""The web app (issue 15): a FastAPI JSON API and a plain HTML/JS page over one run and one index.

``musetag serve`` starts it (:mod:`webapp.cli`), :mod:`webapp.app` builds it, :mod:`webapp.feedback`
stores likes and dislikes, :mod:`webapp.security` refuses what the app must not take. See
``docs/webapp.md``.
"""
