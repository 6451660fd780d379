"""Settings of the example project: no database, no admin, no sessions.

Static files are not Django's to serve: ``STATIC_URL`` is relative, so
Django puts the mount point (``SCRIPT_NAME``) in front of it, and the
configuration serves that path with a plain ``location ... { root ... }``.
Django caches the prefixed ``STATIC_URL`` at its first use, so one process
serves the project below one prefix only.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# Every worker process imports the project for itself: the key must come
# from outside (or be this fixed one, for the example), never be random.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
    }
]
DATABASES: dict[str, dict[str, str]] = {}

USE_TZ = True
# Django sets the worker process's TZ to TIME_ZONE (time.tzset), so the
# server's log times in that worker follow it: UTC, not Django's default
# America/Chicago.
TIME_ZONE = "UTC"
STATIC_URL = "static/"

# Django logs a failing view's traceback to "django.request"; send it to
# stderr, which is localhost's error log with "error_log stderr".
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "ERROR"}},
}
