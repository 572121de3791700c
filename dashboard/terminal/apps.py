from django.apps import AppConfig


class TerminalConfig(AppConfig):
    name = "dashboard.terminal"
    label = "terminal"
