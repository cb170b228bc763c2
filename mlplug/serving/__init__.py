"""The inference server: ``mlplug serve`` and an app factory for any ASGI server.

Modules: ``app`` assembles; ``config`` settings; ``auth`` API keys; ``limits`` the body
cap; ``schemas`` request/response models from the model's schema; ``predict`` scoring and
rendering; ``hotpath`` answers ``POST /predict`` in front of FastAPI; ``routes`` the other
endpoints (and /predict's documentation); ``model_holder`` the hot swap; ``metrics``
Prometheus; ``observe`` the traffic observer seam; ``lifecycle`` readiness and draining;
``state`` what one server holds; ``connections`` header, connection and time limits and the
keep-alive drain under uvicorn; ``server`` runs uvicorn. Import :func:`create_app` from
:mod:`mlplug.serving.app`: importing this package does not import FastAPI.
"""
