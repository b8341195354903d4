"""The admin plane: an HTTP API (FastAPI, OpenAPI) under /admin/v1/."""

from harbourgate.admin.app import create_admin_app
from harbourgate.admin.services import AdminServices

__all__ = ["AdminServices", "create_admin_app"]
