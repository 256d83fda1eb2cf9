from django.urls import path

from sandbox import views

app_name = "sandbox"
urlpatterns = [path("events/", views.received_events, name="events")]
