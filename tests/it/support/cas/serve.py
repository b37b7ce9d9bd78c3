# Start django-cas-server for a test: migrate a fresh SQLite database, add the
# users and a service pattern for https://127.0.0.1:*/, serve with waitress.
# usage: serve.py PORT USER PASSWORD [USER PASSWORD]...
# A user name is kept as given (UTF-8 included): create_user does not run
# Django's username validators, which a test's refused name would fail.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from waitress import serve  # noqa: E402

from cas_server.models import ServicePattern  # noqa: E402

port, accounts = int(sys.argv[1]), sys.argv[2:]
call_command("migrate", verbosity=0, interactive=False)
for user, password in zip(accounts[0::2], accounts[1::2]):
    User.objects.create_user(user, password=password)
ServicePattern.objects.create(pos=1, name="loopback", pattern=r"^https://127\.0\.0\.1(:\d+)?/.*")
print("ready", flush=True)
serve(get_wsgi_application(), host="127.0.0.1", port=port, threads=4, _quiet=True)
