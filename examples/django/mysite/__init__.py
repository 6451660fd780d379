"""A minimal Django project served by localhost (``examples/django/django.conf``)."""
