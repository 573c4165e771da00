"""The flask-sock extension instance, shared by the app factory and the console blueprint."""

from flask_sock import Sock

sock = Sock()
