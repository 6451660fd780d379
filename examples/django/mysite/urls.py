"""The example's routes (below the mount point)."""

from __future__ import annotations

from django.urls import path

from mysite import views

urlpatterns = [
    path("", views.index, name="index"),
    path("hello/<str:name>/", views.hello, name="hello"),
    path("contact/", views.contact, name="contact"),
]
