# Start django-cas-server for a test: migrate a fresh SQLite database, add one
# user and a service pattern for https://127.0.0.1:*/, serve with waitress.
# usage: serve.py PORT USER PASSWORD
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

port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
call_command("migrate", verbosity=0, interactive=False)
User.objects.create_user(user, password=password)
ServicePattern.objects.create(pos=1, name="loopback", pattern=r"^https://127\.0\.0\.1(:\d+)?/.*")
print("ready", flush=True)
serve(get_wsgi_application(), host="127.0.0.1", port=port, threads=4, _quiet=True)
