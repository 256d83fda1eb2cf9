"""URLs of the sales UI, mounted at the site root (namespace `crm`)."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from crm import views

app_name = "crm"

urlpatterns = [
    path("", views.home, name="home"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("board/", views.board, name="board"),
    path("board/changes/", views.board_changes, name="board-changes"),
    path("board/<slug:slug>/more/", views.board_column, name="board-column"),
    path("leads/", views.lead_list, name="leads"),
    path("leads/changes/", views.lead_list_changes, name="leads-changes"),
    path("leads/export.csv", views.lead_export, name="leads-export"),
    path("leads/<int:pk>/", views.lead_detail, name="lead"),
    path("leads/<int:pk>/changes/", views.lead_changes, name="lead-changes"),
    path("leads/<int:pk>/move/", views.move, name="lead-move"),
    path("leads/<int:pk>/owner/", views.assign, name="lead-owner"),
    path("leads/<int:pk>/notes/", views.add_note, name="lead-notes"),
]
