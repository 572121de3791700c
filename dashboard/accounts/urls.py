from django.urls import path

from dashboard.accounts import views

urlpatterns = [
    path("sign-in/", views.sign_in, name="login"),
    path("sign-in/code/", views.sign_in_code, name="sign_in_code"),
    path("sign-out/", views.sign_out, name="logout"),
    path("account/second-factor/", views.second_factor_settings, name="second_factor"),
    path("account/", views.account, name="account"),
    path("account/sessions/<int:pk>/end/", views.end_session, name="account_session_end"),
    path("account/sessions/end-others/", views.end_other_sessions, name="account_sessions_end"),
    path("set-password/<uidb64>/<token>/", views.set_password, name="set_password"),
    path("team/", views.team, name="team"),
    path("team/add/", views.add_person, name="team_add"),
    path("team/<int:pk>/role/", views.change_role, name="team_role"),
    path("team/<int:pk>/active/", views.set_active, name="team_active"),
    path("team/<int:pk>/invite/", views.invite, name="team_invite"),
    path("team/<int:pk>/quota/", views.set_quota, name="team_quota"),
    path("team/throttles/<int:pk>/clear/", views.clear_throttle, name="team_throttle_clear"),
]
