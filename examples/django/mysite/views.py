"""The example's views: a page, a view with a path parameter, a form with CSRF."""

from __future__ import annotations

from django import forms
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse


class ContactForm(forms.Form):
    """A name and a message, both required."""

    name = forms.CharField(max_length=100)
    message = forms.CharField(widget=forms.Textarea, max_length=2000)


def index(request: HttpRequest) -> HttpResponse:
    """The home page: links made by ``{% url %}`` and ``{% static %}``."""
    return render(request, "index.html")


def hello(request: HttpRequest, name: str) -> JsonResponse:
    """``{"greeting": "Hello, NAME!", "self": URL, "script_name": PREFIX}``.

    ``self`` is this view's URL built by ``reverse``: it starts with the
    mount point, which Django takes from ``SCRIPT_NAME``.
    """
    return JsonResponse(
        {
            "greeting": f"Hello, {name}!",
            "self": reverse("hello", args=[name]),
            "script_name": request.META.get("SCRIPT_NAME", ""),
        }
    )


def contact(request: HttpRequest) -> HttpResponse:
    """GET: the form (with its CSRF token). POST: thanks (200), or the form
    again with its errors; Django's CSRF middleware answers 403 first when
    the token is missing or wrong."""
    if request.method == "POST":
        form = ContactForm(request.POST)
        if form.is_valid():
            return render(request, "thanks.html", {"name": form.cleaned_data["name"]})
    else:
        form = ContactForm()
    return render(request, "contact.html", {"form": form})
