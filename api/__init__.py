"""The simtrain HTTP service: FastAPI app (`api.main:create_app`), routes, schemas and the `simtrain` CLI."""
