"""The imagerepo command-line client: an API client that talks to the service over HTTP only
(it imports nothing from the server, so it starts fast and runs anywhere)."""
